"""A `read --jobs` worker's reader routes from raw bytes: frames another worker owns come only as
their capture time, and every frame still comes, once, in file order."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import struct
from collections import Counter
from pathlib import Path

import pytest

from mailsniff.capture.frame import Frame
from mailsniff.capture.multi import open_inputs
from mailsniff.capture.reader import open_capture
from mailsniff.net.decoder import PacketDecoder
from mailsniff.shard import frame_owner, routed_frames, segment_owner
from tests.e2e.many_flows import many_connections, write_records
from tests.paths import PCAPS, PUBLIC


def _frames(paths: list[str]) -> list[Frame]:
    with open_inputs(paths) as reader:
        return list(reader)


def _assert_routes(paths: list[str], n: int) -> None:
    whole = _frames(paths)
    assert whole
    kept_by = Counter[int]()
    for me in range(n):
        with open_inputs(paths) as reader:
            items = list(routed_frames(reader, me, n))
        assert len(items) == len(whole)
        for item, frame in zip(items, whole, strict=True):
            owner = frame_owner(frame, n)
            if isinstance(item, int):  # routed away: another worker's, told from raw bytes
                assert item == frame.ts_ns
                assert owner >= 0 and owner != me
            else:  # this worker's, or one to decode: the frame itself, whole
                assert item == frame
                assert owner in (me, -1)
                kept_by[me] += owner == me
    # every raw-routable frame is kept by exactly one worker
    assert sum(kept_by.values()) == sum(frame_owner(f, n) >= 0 for f in whole)


@pytest.mark.parametrize(
    "capture",
    [
        PCAPS / "seed-telnet.pcap",
        PUBLIC / "zeek/smtp.pcap",
        PUBLIC / "ndpi/pop3.pcapng",  # pcapng: enhanced packet blocks
        PUBLIC / "zeek/smtp-bdat-cmd-invalid.pcapng",
    ],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("n", [2, 3])
def test_each_worker_gets_every_frame_whole_or_as_its_time(capture: Path, n: int) -> None:
    _assert_routes([str(capture)], n)


def test_routing_through_gzip_and_a_set_of_rotated_files(tmp_path: Path) -> None:
    records = many_connections()
    cut = len(records) // 2
    first = write_records(tmp_path / "cap.pcap", records[:cut])
    second = write_records(tmp_path / "cap.pcap1", records[cut:])
    with first.open("rb") as src, gzip.open(tmp_path / "cap.pcap.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    _assert_routes([str(tmp_path / "cap.pcap.gz")], 2)
    _assert_routes([str(first), str(second)], 2)
    _assert_routes([str(first), str(second)], 4)


def test_raw_owner_is_the_decoded_segments_owner_in_both_directions(tmp_path: Path) -> None:
    """The hash from raw bytes and from a decoded segment agree (fragments, decoded by every
    worker, land with the rest of their connection), and both directions share a worker."""
    path = write_records(tmp_path / "many.pcap", many_connections())
    decoder = PacketDecoder()
    by_connection: dict[frozenset[tuple[bytes, int]], set[int]] = {}
    checked = 0
    with open_capture(str(path)) as reader:
        for frame in reader:
            seg = decoder.decode(frame)
            if seg is None:
                continue
            for n in (2, 3, 4):
                raw = frame_owner(frame, n)
                assert raw in (-1, segment_owner(seg, n))
                checked += raw >= 0
            ends = frozenset({(seg.src, seg.sport), (seg.dst, seg.dport)})
            by_connection.setdefault(ends, set()).add(segment_owner(seg, 4))
    assert checked > 500
    assert len(by_connection) == 18
    assert all(len(owners) == 1 for owners in by_connection.values())


def _syn(
    client: bytes,
    sport: int,
    server: bytes,
    dport: int,
    *,
    proto: int = 6,
    options: bytes = b"",
    frag: int = 0,
) -> Frame:
    """An Ethernet/IPv4 frame with a bare TCP SYN (what the router reads: addresses, ports)."""
    vihl = 0x40 | (20 + len(options)) // 4
    total = 40 + len(options)
    ip = struct.pack("!BBHHHBBH4s4s", vihl, 0, total, 1, frag, 64, proto, 0, client, server)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)
    data = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + options + tcp
    return Frame(0, 1, data, len(data))


def test_what_the_router_tells_from_raw_bytes_and_what_it_leaves_to_the_decoder() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 25])
    decoder = PacketDecoder()
    for n in (2, 3, 4):
        # IP options: routed by the ports after them, as the decoded segment is
        with_options = _syn(a, 40001, b, 25, options=b"\x01\x01\x01\x00")
        seg = decoder.decode(with_options)
        assert seg is not None and seg.sport == 40001
        assert frame_owner(with_options, n) == segment_owner(seg, n)
        # not TCP: no connection, the last worker counts it (the others never decode it)
        assert frame_owner(_syn(a, 53, b, 53, proto=17), n) == n - 1
        # a fragment (more fragments, or an offset) carries no ports: every worker decodes it
        assert frame_owner(_syn(a, 40001, b, 25, frag=0x2000), n) == -1
        assert frame_owner(_syn(a, 40001, b, 25, frag=0x0010), n) == -1
        # "don't fragment" is no fragment
        plain = _syn(a, 40001, b, 25)
        assert frame_owner(_syn(a, 40001, b, 25, frag=0x4000), n) == frame_owner(plain, n) >= 0
        # a header length under 20 bytes: the decoder reports it
        broken = plain.data[:14] + b"\x44" + plain.data[15:]
        assert frame_owner(dataclasses.replace(plain, data=broken), n) == -1
        # cut inside the TCP ports: the decoder tells truncated from malformed
        assert frame_owner(dataclasses.replace(plain, data=plain.data[:36]), n) == -1


def test_connections_spread_over_the_workers() -> None:
    """What --jobs gains rests on it: 1,000 connections of 250 clients to one server (each
    client's ephemeral ports in a row), no worker left with less than 3/4 or more than 4/3
    of its share."""
    server = bytes([192, 0, 2, 25])
    frames = [
        _syn(bytes([10, 0, c // 100, c % 100 + 1]), 40000 + 7 * c + k, server, 25)
        for c in range(250)
        for k in range(4)
    ]
    for n in (2, 3, 4):
        counts = Counter(frame_owner(f, n) for f in frames)
        share = len(frames) / n
        assert set(counts) == set(range(n))
        assert all(share * 3 / 4 <= counts[w] <= share * 4 / 3 for w in range(n)), counts
