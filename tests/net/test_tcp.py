"""TCP header decoding."""

from __future__ import annotations

from scapy.layers.inet import TCP

from mailsniff.net.segment import Segment
from mailsniff.net.tcp import parse_tcp


def test_parse_tcp_skips_options_by_the_data_offset():
    data = bytes(TCP(sport=1, dport=2, seq=3, ack=4, flags="S", options=[("MSS", 1460)]) / b"hi")
    segment = parse_tcp(9, b"s", b"d", data, 0, len(data), 0)
    assert segment == Segment(9, b"s", 1, b"d", 2, 3, 4, 0x02, b"hi", 0)


def test_parse_tcp_carries_the_missing_count():
    data = bytes(TCP() / b"hello")
    segment = parse_tcp(0, b"s", b"d", data, 0, len(data) - 2, 2)
    assert segment is not None
    assert (segment.payload, segment.missing) == (b"hel", 2)


def test_parse_tcp_refuses_a_header_that_is_not_all_there():
    data = bytes(TCP(options=[("MSS", 1460)]))
    assert parse_tcp(0, b"s", b"d", data, 0, 22, 0) is None
    assert parse_tcp(0, b"s", b"d", data, 0, 19, 0) is None


def test_parse_tcp_refuses_a_data_offset_below_five_words():
    data = bytearray(bytes(TCP()))
    data[12] = 0x40
    assert parse_tcp(0, b"s", b"d", bytes(data), 0, len(data), 0) is None


def test_decoded_segments_are_values():
    data = bytes(TCP(sport=2, dport=3, seq=4, ack=5, flags="PA") / b"p")
    built = parse_tcp(1, b"a", b"b", data, 0, len(data), 7)
    assert built == Segment(1, b"a", 2, b"b", 3, 4, 5, 0x18, b"p", 7)
    assert built != Segment(1, b"a", 2, b"b", 3, 4, 5, 0x18, b"p", 0)
    assert built.missing == 7 and Segment(1, b"a", 2, b"b", 3, 4, 5, 0x18, b"p").missing == 0
