"""IPv4 and IPv6 header decoding."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop

from mailsniff.net.ip import parse_ipv4, parse_ipv6


def test_parse_ipv4_reads_addresses_protocol_and_payload_bounds():
    data = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=99, options=b"\x01" * 8) / TCP())
    proto, src, dst, start, end, missing, frag, ident = parse_ipv4(b"pad" + data, 3)
    assert (proto, src, dst) == (6, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    assert (start, end, missing, frag, ident) == (3 + 28, 3 + len(data), 0, 0, 99)


def test_parse_ipv4_reports_bytes_beyond_the_capture_as_missing():
    data = bytes(IP() / TCP() / (b"x" * 100))
    header = parse_ipv4(data[:-30], 0)
    assert header is not None
    assert (header[4], header[5]) == (len(data) - 30, 30)


def test_parse_ipv4_takes_total_length_zero_as_segmentation_offload():
    data = bytearray(bytes(IP() / TCP() / b"abc"))
    data[2:4] = b"\0\0"
    header = parse_ipv4(bytes(data), 0)
    assert header is not None and header[4] == len(data)


def test_parse_ipv4_rejects_bad_versions_and_lengths():
    good = bytes(IP() / TCP())
    assert parse_ipv4(b"\x65" + good[1:], 0) is None  # version 6
    assert parse_ipv4(good[:2] + b"\x00\x10" + good[4:], 0) is None  # total < header
    assert parse_ipv4(good[:19], 0) is None
    assert parse_ipv4(b"\x4f" + good[1:20], 0) is None  # 60-byte header in 20 bytes


def test_parse_ipv6_walks_to_the_upper_layer():
    pkt = IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP()
    data = bytes(pkt)
    nh, _src, _dst, start, end, missing, frag = parse_ipv6(data, 0)
    assert (nh, start, end, missing, frag) == (6, 40 + 8 + 8, len(data), 0, None)


def test_parse_ipv6_stops_at_a_fragment_header():
    data = bytes(IPv6() / IPv6ExtHdrFragment(id=0x1234, offset=3, m=1) / TCP())
    nh, _src, _dst, start, _end, _missing, frag = parse_ipv6(data, 0)
    assert (nh, start, frag) == (6, 48, (0x1234, 24, True))


def test_parse_ipv6_rejects_an_extension_header_past_the_end():
    data = bytearray(bytes(IPv6() / IPv6ExtHdrHopByHop() / TCP()))
    data[41] = 200  # hop-by-hop length: 1608 bytes
    assert parse_ipv6(bytes(data), 0) is None
