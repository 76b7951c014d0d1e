"""pcapng reading: interfaces, timestamp resolutions, block types, sections, damage."""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter

from mailsniff.capture.frame import Frame
from mailsniff.capture.pcapng import Interface
from mailsniff.capture.reader import open_capture
from mailsniff.errors import TruncatedCaptureError
from tests.capture.capture_builders import (
    block,
    epb,
    idb,
    option,
    packet_block,
    shb,
    spb,
)

ETH = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / TCP(dport=25))
RAW = bytes(IP(src="10.1.1.1", dst="10.2.2.2") / TCP(dport=110) / b"USER bob\r\n")


def _write(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "x.pcapng"
    path.write_bytes(content)
    return str(path)


def _read(path: str) -> list[Frame]:
    with open_capture(path) as reader:
        return list(reader)


def test_pcapng_reads_two_interfaces_with_different_link_types_and_resolutions(tmp_path):
    content = (
        shb()
        + idb(1, snaplen=65535)  # default if_tsresol: microseconds
        + idb(101, options=option(9, b"\x09"))  # if_tsresol 9: nanoseconds
        + epb(0, 1_700_000_000_123_456, ETH)
        + epb(1, 1_700_000_001_987_654_321, RAW)
        + spb(ETH)
    )
    path = _write(tmp_path, content)
    with open_capture(path) as reader:
        frames = list(reader)
        assert reader.format == "pcapng"
        assert reader.linktypes == [1, 101]
        assert reader.records_read == 3
    assert frames == [
        Frame(1_700_000_000_123_456_000, 1, ETH, len(ETH)),
        Frame(1_700_000_001_987_654_321, 101, RAW, len(RAW)),
        Frame(0, 1, ETH, len(ETH)),  # a Simple Packet Block has no timestamp
    ]


def test_pcapng_converts_power_of_two_resolution_and_adds_tsoffset(tmp_path):
    # if_tsresol 0x8a: units of 2**-10 s; 1025 units = 1 s + 1/1024 s; if_tsoffset 100 s.
    options = option(9, b"\x8a") + option(14, struct.pack("<q", 100))
    path = _write(tmp_path, shb() + idb(1, options=options) + epb(0, 1025, ETH))
    (frame,) = _read(path)
    assert frame.ts_ns == 101 * 10**9 + 976_562  # 10**9 / 1024 = 976562.5, floored


def test_pcapng_converts_resolutions_finer_than_nanoseconds(tmp_path):
    path = _write(tmp_path, shb() + idb(1, options=option(9, b"\x0c")) + epb(0, 5_000_123_456, ETH))
    assert _read(path)[0].ts_ns == 5_000_123  # picoseconds -> ns


def test_pcapng_reads_a_big_endian_section(tmp_path):
    content = (
        shb(">")
        + idb(1, options=option(9, b"\x06", ">"), order=">")
        + epb(0, 1_000_000, ETH, order=">")
        + spb(RAW, order=">")
    )
    path = _write(tmp_path, content)
    frames = _read(path)
    assert [(f.ts_ns, f.data) for f in frames] == [(10**9, ETH), (0, RAW)]


def test_pcapng_new_section_resets_interfaces(tmp_path):
    content = (
        shb() + idb(1) + epb(0, 1, ETH) + shb(">") + idb(101, order=">") + epb(0, 2, RAW, order=">")
    )
    path = _write(tmp_path, content)
    with open_capture(path) as reader:
        frames = list(reader)
        assert reader.linktypes == [1, 101]
    assert [(f.linktype, f.data) for f in frames] == [(1, ETH), (101, RAW)]


def test_pcapng_reads_the_obsolete_packet_block(tmp_path):
    path = _write(tmp_path, shb() + idb(1) + packet_block(0, 3_000_000, ETH))
    assert _read(path) == [Frame(3 * 10**9, 1, ETH, len(ETH))]


def test_pcapng_skips_name_resolution_statistics_and_custom_blocks(tmp_path):
    content = (
        shb()
        + block(4, b"\x01\x00\x08\x00\x0a\x00\x00\x01host\x00\x00\x00\x00")  # NRB
        + idb(1)
        + block(5, struct.pack("<III", 0, 0, 0))  # ISB
        + block(0x00000BAD, b"custom")
        + block(0x12345678, b"unknown block type")
        + epb(0, 7, ETH)
    )
    path = _write(tmp_path, content)
    assert _read(path) == [Frame(7000, 1, ETH, len(ETH))]


def test_pcapng_simple_packet_block_is_cut_to_the_interface_snaplen(tmp_path):
    path = _write(tmp_path, shb() + idb(1, snaplen=20) + spb(ETH))
    (frame,) = _read(path)
    assert frame.data == ETH[:20]
    assert frame.wirelen == len(ETH)


def test_pcapng_epb_reports_wirelen_of_a_snaplen_cut_packet(tmp_path):
    path = _write(tmp_path, shb() + idb(1, snaplen=30) + epb(0, 0, ETH[:30], wirelen=len(ETH)))
    (frame,) = _read(path)
    assert (frame.data, frame.wirelen) == (ETH[:30], len(ETH))


def test_pcapng_reads_what_scapy_writes_for_two_interfaces(tmp_path):
    path = tmp_path / "scapy.pcapng"
    first = Ether(ETH)
    first.time = Decimal("1700000000.000001")
    first.sniffed_on = "eth0"
    second = IP(RAW)
    second.time = Decimal("1700000002.5")
    second.sniffed_on = "tun0"
    with PcapNgWriter(str(path)) as writer:
        writer.write(first)
        writer.write(second)
    with open_capture(str(path)) as reader:
        frames = list(reader)
        assert sorted(set(reader.linktypes)) == [1, 228]  # scapy: LINKTYPE_IPV4
    assert [(f.ts_ns, f.linktype, f.data) for f in frames] == [
        (1_700_000_000_000_001_000, 1, ETH),
        (1_700_000_002_500_000_000, 228, RAW),
    ]


def _collect(path: str) -> tuple[list[Frame], TruncatedCaptureError]:
    frames: list[Frame] = []
    with pytest.raises(TruncatedCaptureError) as info, open_capture(path) as reader:
        for frame in reader:
            frames.append(frame)
    return frames, info.value


def test_pcapng_yields_good_packets_then_raises_on_a_bad_trailer(tmp_path):
    good = shb() + idb(1) + epb(0, 1, ETH)
    bad = bytearray(epb(0, 2, ETH))
    bad[-4:] = struct.pack("<I", 999)
    frames, error = _collect(_write(tmp_path, good + bytes(bad) + epb(0, 3, ETH)))
    assert [f.ts_ns for f in frames] == [1000]
    assert error.records_read == 1
    assert error.offset == len(good)
    assert "trailer" in error.message and "record 2" in error.message


def test_pcapng_raises_on_a_bad_block_length(tmp_path):
    good = shb() + idb(1) + epb(0, 1, ETH)
    frames, error = _collect(_write(tmp_path, good + struct.pack("<II", 6, 13) + b"\0" * 40))
    assert len(frames) == 1
    assert "bad length 13" in error.message
    assert error.offset == len(good)


def test_pcapng_raises_when_the_file_ends_inside_a_block(tmp_path):
    good = shb() + idb(1) + epb(0, 1, ETH)
    frames, error = _collect(_write(tmp_path, good + epb(0, 2, ETH)[:-10]))
    assert len(frames) == 1
    assert "ends inside a block" in error.message


def test_pcapng_raises_on_a_packet_for_an_undefined_interface(tmp_path):
    frames, error = _collect(_write(tmp_path, shb() + idb(1) + epb(0, 1, ETH) + epb(3, 2, ETH)))
    assert len(frames) == 1
    assert "interface 3" in error.message


def test_pcapng_raises_on_an_epb_whose_caplen_exceeds_its_block(tmp_path):
    bad = bytearray(epb(0, 2, ETH))
    bad[20:24] = struct.pack("<I", 5000)  # caplen field
    frames, error = _collect(_write(tmp_path, shb() + idb(1) + bytes(bad)))
    assert frames == []
    assert "captured length 5000" in error.message


def test_pcapng_raises_on_a_section_header_too_short_to_be_one(tmp_path):
    short_shb = struct.pack("<III", 0x0A0D0D0A, 12, 0x1A2B3C4D)
    with pytest.raises(TruncatedCaptureError, match="section header"):
        _read(_write(tmp_path, short_shb + b"\0" * 20))


@given(
    st.integers(0, 255),
    st.integers(-(2**63), 2**63 - 1),
    st.one_of(st.integers(0, 2**64 - 1), st.integers(1_600_000_000 * 10**6, 1_800_000_000 * 10**9)),
)
def test_interface_time_conversion_is_exact_for_every_resolution_and_timestamp(
    tsresol: int, tsoffset_s: int, ts: int
) -> None:
    """A block timestamp in nanoseconds, on machine integers where they hold it, else Python's:
    both give what the formula gives for any 64-bit timestamp, resolution and offset."""
    iface = Interface(1, 0, tsresol, tsoffset_s)
    expected = ((ts * iface.ts_mul) >> iface.ts_shift) // iface.ts_div + iface.ts_offset_ns
    assert iface.ts_ns(ts) == expected
