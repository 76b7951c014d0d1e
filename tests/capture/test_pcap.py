"""pcap reading: byte orders, resolutions, snaplen, chunk boundaries, damage."""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter

from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import open_capture
from mailsniff.errors import NotACaptureError, TruncatedCaptureError
from tests.capture.capture_builders import pcap_header, pcap_record


def _packets(count: int) -> list[bytes]:
    return [
        bytes(
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / TCP(sport=40000 + i, dport=25)
            / (b"x" * i)
        )
        for i in range(count)
    ]


def _read(path: Path) -> list[Frame]:
    with open_capture(str(path)) as reader:
        return list(reader)


def test_pcap_reader_yields_exactly_the_frames_scapy_wrote_in_microseconds(tmp_path: Path):
    path = tmp_path / "usec.pcap"
    packets = _packets(5)
    with PcapWriter(str(path), linktype=1) as writer:
        for i, raw in enumerate(packets):
            pkt = Ether(raw)
            pkt.time = Decimal(f"{1_700_000_000 + i}.{123_456 + i:06d}")
            writer.write(pkt)
    frames = _read(path)
    assert frames == [
        Frame((1_700_000_000 + i) * 10**9 + (123_456 + i) * 1000, 1, raw, len(raw))
        for i, raw in enumerate(packets)
    ]


def test_pcap_reader_keeps_nanoseconds_from_a_nanosecond_file(tmp_path: Path):
    path = tmp_path / "nsec.pcap"
    pkt = Ether() / IP() / TCP()
    pkt.time = Decimal("1700000000.123456789")
    with PcapWriter(str(path), linktype=1, nano=True) as writer:
        writer.write(pkt)
    (frame,) = _read(path)
    assert frame.ts_ns == 1_700_000_000_123_456_789
    assert frame.data == bytes(pkt)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_reader_reads_both_byte_orders_and_resolutions(tmp_path: Path, order, nano):
    path = tmp_path / "x.pcap"
    packets = _packets(3)
    frac = 999_999_999 if nano else 999_999
    # Four different bytes in the seconds, the top one past 2**31: a byte read from the wrong
    # place or shifted the wrong way changes the time.
    sec = 0xF1E2D3C4
    body = b"".join(pcap_record(sec + i, frac, raw, order=order) for i, raw in enumerate(packets))
    path.write_bytes(pcap_header(order=order, nano=nano, linktype=101) + body)
    with open_capture(str(path)) as reader:
        frames = list(reader)
        assert reader.format == "pcap"
        assert reader.linktypes == [101]
    scale = 1 if nano else 1000
    assert [f.ts_ns for f in frames] == [(sec + i) * 10**9 + frac * scale for i in range(3)]
    assert [f.data for f in frames] == packets
    assert {f.linktype for f in frames} == {101}


def test_pcap_reader_reports_wirelen_of_records_the_snaplen_cut(tmp_path: Path):
    path = tmp_path / "snap.pcap"
    raw = _packets(1)[0]
    path.write_bytes(pcap_header(snaplen=40) + pcap_record(1, 0, raw[:40], wirelen=len(raw)))
    (frame,) = _read(path)
    assert frame.data == raw[:40]
    assert frame.wirelen == len(raw)


def test_pcap_reader_handles_records_across_read_chunks(tmp_path: Path):
    # 3000 records of up to 2999 bytes: ~4.5 MB, several 1 MiB chunks, records split anywhere.
    path = tmp_path / "big.pcap"
    datas = [bytes([i % 251]) * (i % 3000) for i in range(3000)]
    with path.open("wb") as out:
        out.write(pcap_header(snaplen=65535))
        for i, data in enumerate(datas):
            out.write(pcap_record(i, i, data))
    with open_capture(str(path)) as reader:
        frames = list(reader)
        assert reader.records_read == 3000
        assert reader.bytes_read == reader.total_bytes == path.stat().st_size
    assert [f.data for f in frames] == datas
    assert [f.ts_ns for f in frames] == [i * 10**9 + i * 1000 for i in range(3000)]


def test_pcap_reader_with_only_a_header_yields_nothing(tmp_path: Path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(pcap_header())
    assert _read(path) == []


def test_pcap_reader_yields_good_records_then_raises_on_a_truncated_last_record(tmp_path: Path):
    path = tmp_path / "cut.pcap"
    packets = _packets(3)
    good = pcap_header() + pcap_record(1, 0, packets[0]) + pcap_record(2, 0, packets[1])
    path.write_bytes(good + pcap_record(3, 0, packets[2])[:-5])
    reader = open_capture(str(path))
    frames = []
    with pytest.raises(TruncatedCaptureError) as info:
        for frame in reader:
            frames.append(frame)
    assert [f.data for f in frames] == packets[:2]
    assert info.value.records_read == 2
    assert info.value.offset == len(good)
    assert "record 3" in info.value.message
    assert f"byte offset {len(good)}" in info.value.message
    reader.close()


def test_pcap_reader_raises_when_the_file_ends_inside_a_record_header(tmp_path: Path):
    path = tmp_path / "cut.pcap"
    good = pcap_header() + pcap_record(1, 0, b"abc")
    path.write_bytes(good + b"\x01\x02\x03")
    reader = open_capture(str(path))
    assert next(reader).data == b"abc"
    with pytest.raises(TruncatedCaptureError, match="inside a record header") as info:
        next(reader)
    assert (info.value.records_read, info.value.offset) == (1, len(good))


def test_pcap_reader_stops_at_a_bogus_record_length(tmp_path: Path):
    path = tmp_path / "bogus.pcap"
    good = pcap_header(snaplen=65535) + pcap_record(1, 0, b"first")
    bogus = struct.pack("<IIII", 2, 0, 3_925_868_813, 60)
    path.write_bytes(good + bogus + b"\0" * 100)
    reader = open_capture(str(path))
    assert next(reader).data == b"first"
    with pytest.raises(TruncatedCaptureError, match="3925868813") as info:
        next(reader)
    assert info.value.records_read == 1
    assert info.value.offset == len(good)


def test_a_file_that_ends_inside_its_pcap_header_is_not_a_capture(tmp_path: Path):
    # Nothing was cut from a capture: there never was one (exit 3, not "truncated").
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_header()[:10])
    with pytest.raises(NotACaptureError, match="too short to be a pcap capture"):
        open_capture(str(path))


def test_frames_read_are_values_equal_to_constructed_ones(tmp_path: Path):
    path = tmp_path / "one.pcap"
    path.write_bytes(pcap_header() + pcap_record(1, 2, b"ab", wirelen=3))
    with open_capture(str(path)) as reader:
        (frame,) = list(reader)
    assert frame == Frame(1_000_002_000, 1, b"ab", 3)
    assert frame != Frame(1_000_002_000, 1, b"ab", 2)


def test_pcap_reader_ignores_fcs_bits_in_the_link_type_field(tmp_path: Path):
    path = tmp_path / "fcs.pcap"
    path.write_bytes(pcap_header(linktype=0x10000000 | 1) + pcap_record(1, 0, b"x"))
    with open_capture(str(path)) as reader:
        assert reader.linktypes == [1]
        assert next(reader).linktype == 1
