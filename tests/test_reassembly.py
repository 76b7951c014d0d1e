"""TCP reassembly: ordering, wraparound, retransmissions, gaps, flow lifecycle, bounds."""

from __future__ import annotations

import email
import hashlib
import socket

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.model import Gap
from mailsniff.net.segment import TCP_ACK, TCP_FIN, TCP_PSH, Segment
from mailsniff.protocols.base import Direction
from mailsniff.reassembly import (
    MAX_GAPS_RECORDED,
    MAX_TOMBSTONES,
    FlowData,
    FlowEnd,
    FlowEvent,
    FlowGap,
    FlowStart,
    Reassembler,
)
from tests.paths import PUBLIC
from tests.reassembly_strategies import (
    CLIENT,
    SERVER,
    Conn,
    data_of,
    feed_all,
    read_pcap_segments,
    segmented_streams,
    tile,
)

C, S = Direction.CLIENT, Direction.SERVER


def gaps(events: list[FlowEvent]) -> list[tuple[Direction, int, int]]:
    return [(e.direction, e.offset, e.length) for e in events if isinstance(e, FlowGap)]


def ends(events: list[FlowEvent]) -> list[str]:
    return [e.reason for e in events if isinstance(e, FlowEnd)]


# -- handshake, order, wraparound ----------------------------------------------------------------


def test_reassembly_handshake_then_data_both_ways_is_delivered_per_direction() -> None:
    conn = Conn()
    r = Reassembler()
    handshake = conn.handshake()
    events = feed_all(r, handshake)
    assert [type(e) for e in events] == [FlowStart]
    assert events[0].ts_ns == handshake[0].ts_ns
    flow = events[0].flow
    assert flow.start_ns == handshake[0].ts_ns and flow.last_ns == handshake[2].ts_ns
    assert (flow.client, flow.server, flow.id) == (CLIENT, SERVER, 1)
    assert flow.handshake_seen and not flow.midstream
    events = feed_all(
        r,
        [
            conn.s(b"220 mx ESMTP\r\n"),
            conn.c(b"EHLO a\r\n"),
            conn.s(b"250 ok\r\n"),
            conn.c(b"QUIT\r\n"),
        ],
    )
    assert [(e.direction, e.data) for e in events if isinstance(e, FlowData)] == [
        (S, b"220 mx ESMTP\r\n"),
        (C, b"EHLO a\r\n"),
        (S, b"250 ok\r\n"),
        (C, b"QUIT\r\n"),
    ]
    assert gaps(events) == []
    assert (flow.client_bytes, flow.server_bytes, flow.packets) == (14, 22, 7)
    assert r.open_flows == 1


def test_reassembly_data_carried_on_the_handshake_ack_starts_at_offset_zero() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, [conn.syn(), conn.syn_ack()])
    events = r.feed(conn.c(b"EHLO x\r\n"))
    assert data_of(events, C) == b"EHLO x\r\n"


def test_reassembly_sequence_wraparound_is_seamless_in_both_directions() -> None:
    conn = Conn(cisn=2**32 - 5, sisn=2**32 - 1)  # the server's byte 0 has sequence number 0
    r = Reassembler()
    events = feed_all(r, conn.handshake())
    parts = [b"MAIL", b" FRO", b"M:<a", b"@b>\r\n"]
    events += feed_all(r, [conn.c(p) for p in parts])
    events += feed_all(r, [conn.s(b"250 "), conn.s(b"2.1.0 ok\r\n")])
    assert data_of(events, C) == b"".join(parts)
    assert data_of(events, S) == b"250 2.1.0 ok\r\n"
    assert gaps(events) == []


def test_reassembly_wraparound_segment_arriving_out_of_order_is_placed_correctly() -> None:
    conn = Conn(cisn=2**32 - 3)
    r = Reassembler()
    feed_all(r, conn.handshake())
    first, second, third = conn.c(b"abcd"), conn.c(b"efgh"), conn.c(b"ijkl")  # second crosses 0
    assert r.feed(third) == [] and r.feed(second) == []
    assert data_of(r.feed(first), C) == b"abcdefghijkl"


def test_reassembly_out_of_order_segments_are_delivered_in_order() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    segs = [conn.c(b"one "), conn.c(b"two "), conn.c(b"three "), conn.c(b"four")]
    assert r.feed(segs[2]) == []
    assert r.feed(segs[1]) == []
    events = r.feed(segs[0])
    assert [e.data for e in events if isinstance(e, FlowData)] == [b"one two three "]
    assert data_of(r.feed(segs[3]), C) == b"four"


# -- retransmissions -----------------------------------------------------------------------------


def test_reassembly_exact_retransmission_is_dropped() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    seg = conn.c(b"HELO x\r\n")
    assert data_of(r.feed(seg), C) == b"HELO x\r\n"
    assert r.feed(seg) == []
    flow = r.feed(conn.c(b"QUIT\r\n"))[0].flow
    assert flow.retransmissions == 1 and flow.overlap_conflicts == 0
    assert flow.client_bytes == 14


def test_reassembly_exact_duplicate_of_buffered_segment_is_dropped() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    a, b = conn.c(b"AAAA"), conn.c(b"BBBB")
    r.feed(b)
    r.feed(b)
    events = r.feed(a)
    assert data_of(events, C) == b"AAAABBBB"
    assert events[0].flow.overlap_conflicts == 0


def test_reassembly_overlap_with_buffered_bytes_keeps_first_copy_and_counts_conflict() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c_at(10, b"XXXXXXXXXX"))  # received first, out of order
    events = r.feed(conn.c_at(0, b"a" * 20))  # covers it with different bytes
    assert data_of(events, C) == b"a" * 10 + b"X" * 10
    assert events[0].flow.overlap_conflicts == 1


def test_reassembly_overlap_with_delivered_bytes_keeps_first_copy_and_counts_conflict() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    first = r.feed(conn.c_at(0, b"hello world"))
    events = r.feed(conn.c_at(6, b"WORLD and more"))
    assert data_of(first + events, C) == b"hello world and more"
    assert first[0].flow.overlap_conflicts == 1


def test_reassembly_keepalive_with_a_garbage_byte_is_not_a_conflict() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c(b"DATA\r\n"))
    assert r.feed(conn.c_at(5, b"\x00")) == []  # sequence number next-1, one byte
    flow = r.feed(conn.c(b"x"))[0].flow
    assert flow.overlap_conflicts == 0 and flow.client_bytes == 7


def test_reassembly_overlap_filling_holes_between_buffered_pieces_keeps_each_first_copy() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c_at(4, b"bb"))
    r.feed(conn.c_at(10, b"dd"))
    events = r.feed(conn.c_at(0, b"aaaaBBccccDDee"))
    assert data_of(events, C) == b"aaaabbccccddee"
    assert events[0].flow.overlap_conflicts == 1


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_reassembly_overlap_conflict_with_buffered_bytes_records_range_and_both_hashes() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c_at(10, b"XXXXXXXXXX"))  # received first, out of order
    events = r.feed(conn.c_at(0, b"a" * 20))  # covers it with different bytes
    conflicts = events[0].flow.conflicts
    assert conflicts is not None
    found = [(c.direction, c.offset, c.length, c.kept_sha256, c.other_sha256) for c in conflicts]
    assert found == [(C, 10, 10, sha(b"X" * 10), sha(b"a" * 10))]


def test_reassembly_overlap_conflict_with_delivered_bytes_records_range_and_both_hashes() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    first = r.feed(conn.s_at(0, b"220 mail.example.com ESMTP\r\n"))
    r.feed(conn.s_at(4, b"evil.example.net ESMTP\r\nMORE"))
    conflicts = first[0].flow.conflicts
    assert conflicts is not None and len(conflicts) == 1
    c = conflicts[0]
    assert (c.direction, c.offset, c.length) == (S, 4, 24)
    assert c.kept_sha256 == sha(b"mail.example.com ESMTP\r\n")
    assert c.other_sha256 == sha(b"evil.example.net ESMTP\r\n")


def test_reassembly_longer_copy_of_the_first_segment_after_the_next_one_is_compared_to_both() -> (
    None
):
    """The greeting retransmitted with more bytes after the next segment was delivered: the part
    over the greeting differs (a forged copy) and is recorded, the part over the next one too."""
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    greeting, reply = b"220 mail.example.com ESMTP\r\n", b"250 ok\r\n"
    events = r.feed(conn.s_at(0, greeting))
    events += r.feed(conn.s_at(len(greeting), reply))
    forged = b"220 evil.example.net ESMTP\r\n" + b"251 ok"
    events += r.feed(conn.s_at(0, forged))
    assert data_of(events, S) == greeting + reply  # the first copies were kept
    conflicts = events[0].flow.conflicts
    assert conflicts is not None
    found = [(c.direction, c.offset, c.length, c.kept_sha256, c.other_sha256) for c in conflicts]
    assert found == [
        (S, 0, len(greeting) + 6, sha(greeting + reply[:6]), sha(forged)),
    ]


def test_reassembly_identical_overlaps_record_no_conflict() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c_at(10, b"klmnopqrst"))
    events = r.feed(conn.c_at(0, b"abcdefghijklmnopqrst"))
    events += r.feed(conn.c_at(5, b"fghijklmnopqrstuvwxyz"))
    assert data_of(events, C) == b"abcdefghijklmnopqrstuvwxyz"
    assert events[0].flow.conflicts is None and events[0].flow.overlap_conflicts == 0


def test_reassembly_sequence_jump_of_2_31_is_a_gap_and_the_data_after_it_is_delivered() -> None:
    conn = Conn()
    r = Reassembler()
    events = feed_all(r, conn.handshake())
    events += r.feed(conn.c(b"a" * 100))
    conn.cseq = (conn.cseq + 2**31) & 0xFFFFFFFF  # 2**31 bytes the capture never saw
    after = b"".join(bytes([65 + i % 26]) * 1024 for i in range(32))
    for i in range(0, len(after), 1024):
        events += r.feed(conn.c(after[i : i + 1024]))
        events += r.feed(conn.s(b""))
    events += feed_all(r, [conn.c_fin(), conn.s_fin(), conn.c(b"")]) + r.flush()
    assert data_of(events, C) == b"a" * 100 + after
    assert gaps(events) == [(C, 100, 2**31)]


def test_reassembly_server_bytes_captured_before_the_syn_ack_are_placed_by_it() -> None:
    """A later, shorter copy of the greeting captured before the SYN-ACK must not become
    byte 0: the SYN-ACK places it, and the whole greeting captured afterwards is delivered."""
    greeting = b"220 mail.example.com ESMTP ready\r\n"
    conn = Conn()
    r = Reassembler()
    events = r.feed(conn.syn())
    events += r.feed(conn.s_at(10, greeting[10:]))
    events += feed_all(r, [conn.syn_ack(), conn.c(b""), conn.s_at(0, greeting)])
    events += feed_all(r, [conn.c(b"EHLO x\r\n")]) + r.flush()
    assert data_of(events, S) == greeting
    assert gaps(events) == []
    assert events[0].flow.handshake_seen


def test_reassembly_server_bytes_before_a_missed_syn_ack_are_placed_by_the_handshake_ack() -> None:
    greeting = b"220 mail.example.com ESMTP ready\r\n"
    conn = Conn()
    r = Reassembler()
    events = r.feed(conn.syn())  # the SYN-ACK is never captured
    events += r.feed(conn.s_at(4, greeting[4:20]))
    events += r.feed(conn.c(b""))  # the handshake's ACK: the server's byte 0
    events += r.feed(conn.s_at(0, greeting))
    events += feed_all(r, [conn.c(b"EHLO x\r\n")]) + r.flush()
    assert data_of(events, S) == greeting
    assert gaps(events) == []


# -- midstream, who is the client ----------------------------------------------------------------


def test_reassembly_midstream_start_emits_unknown_prefix_marker_then_data() -> None:
    conn = Conn()
    r = Reassembler()
    events = r.feed(conn.s_at(500, b"250 ok\r\n"))
    assert [type(e) for e in events] == [FlowStart, FlowGap, FlowData]
    flow = events[0].flow
    assert flow.midstream and not flow.handshake_seen
    assert gaps(events) == [(S, 0, 0)]
    assert flow.gaps == []  # the marker has no length: it is not a recorded gap
    assert (flow.client, flow.server) == (CLIENT, SERVER)  # port 25 < 40000
    later = feed_all(r, [conn.c_at(77, b"QUIT\r\n"), conn.s_at(508, b"221 bye\r\n")])
    assert gaps(later) == [(C, 0, 0)]
    assert data_of(later, C) == b"QUIT\r\n" and data_of(later, S) == b"221 bye\r\n"


def test_reassembly_pure_ack_fin_or_rst_of_unknown_flow_creates_no_flow() -> None:
    conn = Conn()
    r = Reassembler()
    assert r.feed(conn.c_ack(10)) == []
    assert r.feed(conn.c_fin()) == []
    assert r.feed(conn.c_rst()) == []
    assert r.open_flows == 0


def test_reassembly_client_is_the_syn_sender_even_on_a_high_port() -> None:
    conn = Conn(client=(b"\x0a\x00\x00\x01", 25), server=(b"\x0a\x00\x00\x02", 40000))
    events = Reassembler().feed(conn.syn())
    assert events[0].flow.client == (b"\x0a\x00\x00\x01", 25)


def test_reassembly_client_is_the_receiver_of_a_syn_ack_when_the_syn_was_missed() -> None:
    conn = Conn()
    r = Reassembler()
    events = r.feed(conn.syn_ack())
    flow = events[0].flow
    assert (flow.client, flow.server) == (CLIENT, SERVER)
    assert flow.handshake_seen
    events = feed_all(r, [conn.c(b"EHLO\r\n"), conn.s(b"250 x\r\n")])
    assert gaps(events) == []  # both ISNs came from the SYN-ACK: offsets are exact
    assert data_of(events, C) == b"EHLO\r\n"


def test_reassembly_server_hint_decides_roles_of_a_midstream_flow() -> None:
    a, b = (b"\x0a\x00\x00\x01", 3000), (b"\x0a\x00\x00\x02", 50000)
    conn = Conn(client=a, server=b)
    events = Reassembler().feed(conn.s(b"+OK ready\r\n"), server=b)
    assert events[0].flow.server == b
    assert gaps(events) == [(S, 0, 0)]


def test_reassembly_server_ports_decide_roles_before_port_order() -> None:
    a, b = (b"\x0a\x00\x00\x01", 1000), (b"\x0a\x00\x00\x02", 2525)
    seg = Conn(client=a, server=b).c(b"EHLO x\r\n")
    assert Reassembler(server_ports=frozenset({2525})).feed(seg)[0].flow.server == b
    assert Reassembler().feed(seg)[0].flow.server == a


# -- holes and gaps ------------------------------------------------------------------------------


def test_reassembly_hole_then_ack_beyond_it_reports_gap_then_later_data() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    assert data_of(r.feed(conn.c(b"A" * 10)), C) == b"A" * 10
    conn.c(b"B" * 10)  # never captured
    assert r.feed(conn.c(b"C" * 10)) == []  # buffered: maybe only reordered
    events = r.feed(conn.s_ack(30))  # the server received all 30 bytes
    assert [type(e) for e in events] == [FlowGap, FlowData]
    assert gaps(events) == [(C, 10, 10)]
    assert data_of(events, C) == b"C" * 10
    flow = events[0].flow
    assert flow.gaps == [Gap(C, 10, 10, events[0].ts_ns)]
    assert data_of(r.feed(conn.c(b"D")), C) == b"D"  # delivery resumes after the gap


def test_reassembly_tail_hole_is_declared_when_data_after_it_arrives() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.s(b"220 hi\r\n"))
    conn.s(b"250-big\r\n250 ok\r\n")  # lost
    assert r.feed(conn.c_ack(25)) == []  # the data may still come: some captures lag the ACK
    events = r.feed(conn.s(b"250 next\r\n"))  # the sender moved on: the hole is real
    assert gaps(events) == [(S, 8, 17)]
    assert data_of(events, S) == b"250 next\r\n"


def test_reassembly_tail_hole_known_only_from_acks_is_declared_at_the_end() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.s(b"220 hi\r\n"))
    conn.s(b"250-big\r\n250 ok\r\n")  # lost
    conn.s(b"354 go\r\n")  # lost too
    assert feed_all(r, [conn.c_ack(25), conn.c_ack(33)]) == []  # the data may still come
    events = r.flush()
    assert gaps(events) == [(S, 8, 24)]  # the last acknowledged number may be a FIN: not counted


def test_reassembly_data_captured_after_its_ack_is_still_delivered() -> None:
    # arkime smtp-decrypted.pcap frame 27: the server's ACK precedes the client data it covers.
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c(b"EHLO x\r\n"))
    late = [conn.c(b"MAIL FROM:<a@b>\r\n"), conn.c(b"RCPT TO:<c@d>\r\n")]
    assert r.feed(conn.s_ack(41)) == []
    events = feed_all(r, late)
    assert data_of(events, C) == b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
    assert gaps(events + r.flush()) == []


def test_reassembly_arkime_decrypted_capture_with_acks_ahead_of_data_has_no_gaps() -> None:
    path = PUBLIC / "arkime" / "smtp-decrypted.pcap"
    r = Reassembler(server_ports=frozenset({25, 2525}))
    events = feed_all(r, read_pcap_segments(path)) + r.flush()
    flows = [e.flow for e in events if isinstance(e, FlowStart)]
    # Stream lengths from each side's FIN (or final RST) sequence number, as tshark shows them.
    assert [(f.server[1], f.client_bytes, f.server_bytes) for f in flows] == [
        (25, 16730, 937),
        (2525, 3347, 782),
        (2525, 4168, 782),
        (25, 1323, 935),
    ]
    assert gaps(events) == []
    assert [f.close_reason for f in flows] == ["rst", "fin", "rst", "rst"]


def test_reassembly_late_copy_of_bytes_declared_missing_is_not_delivered() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    lost = conn.s(b"220 hi\r\n")
    r.feed(conn.c(b"EHLO\r\n"))  # acknowledges the greeting
    events = r.feed(conn.s(b"250 ok\r\n"))
    assert gaps(events) == [(S, 0, 8)] and data_of(events, S) == b"250 ok\r\n"
    assert r.feed(lost) == []  # declared missing: a late copy is not delivered


def test_reassembly_ack_of_an_uncaptured_fin_is_not_a_gap() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.s(b"221 bye\r\n"))
    conn.s_fin()  # not captured
    assert r.feed(conn.c_ack(10)) == []
    events = r.flush()
    assert gaps(events) == [] and ends(events) == ["eof"]


def test_reassembly_buffer_byte_limit_declares_the_hole_a_gap() -> None:
    conn = Conn()
    r = Reassembler(max_buffer=100)
    feed_all(r, conn.handshake())
    r.feed(conn.c(b"x" * 10))
    conn.c(b"?" * 5)  # lost
    events: list[FlowEvent] = []
    for _ in range(3):
        events += r.feed(conn.c(b"y" * 30))
    assert events == []  # 90 bytes buffered: still waiting for the hole
    events = r.feed(conn.c(b"y" * 30))  # 120 > 100
    assert gaps(events) == [(C, 10, 5)]
    assert data_of(events, C) == b"y" * 120
    assert data_of(r.feed(conn.c(b"z")), C) == b"z"


def test_reassembly_buffer_segment_limit_declares_the_hole_a_gap() -> None:
    conn = Conn()
    r = Reassembler(max_segments=3)
    feed_all(r, conn.handshake())
    conn.c(b"?")  # lost
    events: list[FlowEvent] = []
    for letter in b"abcd":
        events += r.feed(conn.c(bytes([letter])))
    assert gaps(events) == [(C, 0, 1)]
    assert data_of(events, C) == b"abcd"


def test_reassembly_several_holes_under_buffer_pressure_each_become_a_gap() -> None:
    conn = Conn()
    r = Reassembler(max_segments=2)
    feed_all(r, conn.handshake())
    events: list[FlowEvent] = []
    for i in range(4):
        conn.c(b"-" * (i + 1))  # lost
        events += r.feed(conn.c(bytes([65 + i]) * 2))
    assert gaps(events) == [(C, 0, 1), (C, 3, 2)]
    assert data_of(events, C) == b"AABB"
    events = r.flush()
    assert gaps(events) == [(C, 7, 3), (C, 12, 4)]
    assert data_of(events, C) == b"CCDD"


def test_reassembly_snaplen_cut_segment_delivers_its_bytes_then_a_gap() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    events = r.feed(conn.c(b"0123456789", missing=90))
    assert [type(e) for e in events] == [FlowData, FlowGap]
    assert data_of(events, C) == b"0123456789"
    assert gaps(events) == [(C, 10, 90)]
    assert data_of(r.feed(conn.c(b"next")), C) == b"next"
    assert events[0].flow.gaps == [Gap(C, 10, 90, events[1].ts_ns)]


def test_reassembly_snaplen_cut_segment_out_of_order_keeps_its_gap_in_place() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    first, cut, last = conn.c(b"aa"), conn.c(b"bb", missing=6), conn.c(b"cc")
    assert r.feed(last) == [] and r.feed(cut) == []
    events = r.feed(first)
    assert [type(e) for e in events] == [FlowData, FlowGap, FlowData]
    assert data_of(events, C) == b"aabbcc"
    assert gaps(events) == [(C, 4, 6)]


def test_reassembly_adjacent_gaps_are_merged_in_flow_gaps() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    events = feed_all(r, [conn.s(b"", missing=100), conn.s(b"", missing=150)])
    assert gaps(events) == [(S, 0, 100), (S, 100, 150)]
    assert events[0].flow.gaps == [Gap(S, 0, 250, events[0].ts_ns)]
    assert events[0].flow.gap_count == 2


# -- end of flows --------------------------------------------------------------------------------


def test_reassembly_fin_from_both_sides_ends_the_flow_after_all_data() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    quit_seg = conn.c(b"QUIT\r\n")
    fin = conn.c_fin()
    assert r.feed(fin) == []  # FIN ahead of the data it follows
    reply = conn.s(b"221 bye\r\n", flags=TCP_ACK | TCP_FIN, ack=conn.cisn + 1)
    events = feed_all(r, [reply, quit_seg])
    assert [type(e) for e in events] == [FlowData, FlowData, FlowEnd]
    assert ends(events) == ["fin"]
    assert events[-1].flow.close_reason == "fin"
    assert r.open_flows == 0


def test_reassembly_rst_ends_the_flow_and_turns_buffered_holes_into_gaps() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    conn.c(b"lost")
    r.feed(conn.c(b"kept"))
    events = r.feed(conn.c_rst())
    assert gaps(events) == [(C, 0, 4)]
    assert data_of(events, C) == b"kept"
    assert ends(events) == ["rst"]
    assert r.open_flows == 0


def test_reassembly_hole_before_a_known_fin_becomes_a_gap_at_the_end() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    conn.c(b"never seen")
    r.feed(conn.c_fin())
    events = r.flush()
    assert gaps(events) == [(C, 0, 10)]
    assert ends(events) == ["eof"]


def test_reassembly_trailing_packets_after_close_do_not_open_a_new_flow() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    last_data = conn.c(b"QUIT\r\n")
    events = feed_all(r, [last_data, conn.c_fin(), conn.s_fin()])
    assert ends(events) == ["fin"]
    assert feed_all(r, [conn.c(b""), last_data, conn.s(b"221 late\r\n")]) == []
    assert r.open_flows == 0


def test_reassembly_port_reuse_after_close_starts_a_second_flow() -> None:
    r = Reassembler()
    first = Conn(cisn=100)
    events = feed_all(r, [*first.handshake(), first.c(b"one"), first.c_fin(), first.s_fin()])
    second = Conn(cisn=7_000_000, ts=first.ts)
    events += feed_all(r, [*second.handshake(), second.c(b"two")])
    starts = [e.flow for e in events if isinstance(e, FlowStart)]
    assert [f.id for f in starts] == [1, 2]
    assert data_of([e for e in events if e.flow is starts[1]], C) == b"two"
    assert starts[1].handshake_seen


def test_reassembly_new_syn_on_a_live_flow_ends_it_and_starts_another() -> None:
    r = Reassembler()
    first = Conn(cisn=100)
    feed_all(r, [*first.handshake(), first.c(b"half")])
    second = Conn(cisn=5_000, ts=first.ts)
    events = feed_all(r, [second.syn(), second.syn_ack(), second.c(b"new")])
    assert ends(events) == ["reused"]
    assert [e.flow.id for e in events if isinstance(e, FlowStart)] == [2]
    assert data_of(events, C) == b"new"
    assert r.open_flows == 1


def test_reassembly_retransmitted_syn_does_not_restart_the_flow() -> None:
    conn = Conn()
    r = Reassembler()
    syn = conn.syn()
    events = feed_all(r, [syn, syn, conn.syn_ack(), conn.c(b"x")])
    assert [type(e) for e in events] == [FlowStart, FlowData]


def test_reassembly_idle_flow_expires_and_delivers_what_it_buffered() -> None:
    conn = Conn()
    r = Reassembler(idle_timeout_ns=10_000_000_000)
    feed_all(r, conn.handshake())
    conn.c(b"lost")
    seg = conn.c(b"buffered")
    r.feed(seg)
    assert r.expire(seg.ts_ns + 10_000_000_000) == []
    events = r.expire(seg.ts_ns + 10_000_000_001)
    assert gaps(events) == [(C, 0, 4)]
    assert data_of(events, C) == b"buffered"
    assert ends(events) == ["idle"]
    assert events[-1].ts_ns == seg.ts_ns
    assert r.open_flows == 0


def test_reassembly_expire_keeps_flows_that_saw_recent_packets() -> None:
    old, new = Conn(), Conn(client=(CLIENT[0], 40001))
    r = Reassembler(idle_timeout_ns=1_000)
    r.feed(old.c(b"a"))
    new.ts = old.ts + 5_000
    r.feed(new.c(b"b"))
    events = r.expire(old.ts + 2_000)
    assert [e.flow.id for e in events if isinstance(e, FlowEnd)] == [1]
    assert r.open_flows == 1


def test_reassembly_flush_ends_every_flow_with_eof() -> None:
    r = Reassembler()
    a, b = Conn(), Conn(client=(CLIENT[0], 40001))
    feed_all(r, [a.c(b"x"), b.c(b"y")])
    events = r.flush()
    assert ends(events) == ["eof", "eof"]
    assert [e.flow.id for e in events if isinstance(e, FlowEnd)] == [1, 2]
    assert r.open_flows == 0 and r.flush() == []


def test_reassembly_tombstones_are_bounded() -> None:
    r = Reassembler()
    for port in range(MAX_TOMBSTONES + 10):
        conn = Conn(client=(CLIENT[0], 1024 + port))
        feed_all(r, [*conn.handshake(), conn.c_rst()])
    assert r.open_flows == 0
    assert len(r._tombstones) <= 2 * MAX_TOMBSTONES  # noqa: SLF001 - the bound itself
    # the oldest tombstone was forgotten: its trailing data opens a (midstream) flow again
    assert r.feed(Conn(client=(CLIENT[0], 1024)).c(b"x"))


# -- one direction only --------------------------------------------------------------------------


def test_reassembly_one_direction_capture_delivers_the_client_stream() -> None:
    conn = Conn()
    r = Reassembler()
    events = feed_all(r, [conn.syn(), conn.c(b"")])  # handshake ACK: the server's ISN
    conn.s(b"220 mx\r\n")  # never captured
    events += feed_all(r, [conn.c(b"EHLO a\r\n"), conn.c(b"QUIT\r\n"), conn.c_fin()])
    events += r.flush()
    assert data_of(events, C) == b"EHLO a\r\nQUIT\r\n"
    # acknowledged by the client, never seen; the last byte could have been a FIN
    assert gaps(events) == [(S, 0, 7)]


def test_reassembly_zeek_one_side_only_capture_yields_the_whole_client_stream() -> None:
    path = PUBLIC / "zeek" / "smtp-one-side-only.pcap"
    segments = read_pcap_segments(path)
    assert len(segments) == 19
    r = Reassembler(server_ports=frozenset({25}))
    events = feed_all(r, segments) + r.flush()
    client = data_of(events, C)
    assert client.startswith(b"ehlo enzo.icir.org\r\nmail FROM:<robin@icir.org> size=9030\r\n")
    assert client.endswith(b"quit\r\n")
    assert len(client) == 18530  # FIN at relative sequence 18531
    assert client.count(b"Subject: Hello") == 2
    flow = events[0].flow
    assert flow.handshake_seen and flow.client[1] == 57722 and flow.server[1] == 25
    assert all(g.direction is S for g in flow.gaps)
    # The client acknowledged 763 server bytes, then the server's FIN (ACK 765): none captured.
    assert flow.gaps == [Gap(S, 0, 763, flow.gaps[0].ts_ns)]
    assert ends(events) == ["eof"]


def test_reassembly_first_copy_wins_reproduces_suricatas_attachment_in_bug_5981() -> None:
    # A 6458-byte segment (hand-edited to carry a long line of "A"s) is followed by four
    # retransmissions of the same range with the original, different bytes. Suricata's published
    # result (winmail.dat, 10451 bytes, this sha256) holds only if the first copy wins.
    path = PUBLIC / "suricata-verify" / "smtp-bug-5981.pcap"
    r = Reassembler()
    events = feed_all(r, read_pcap_segments(path)) + r.flush()
    client = data_of(events, C)
    flow = events[0].flow
    assert flow.overlap_conflicts == 4
    assert gaps(events) == []
    body = client[client.index(b"DATA\r\n") + 6 : client.rindex(b"\r\n.\r\n")]
    message = email.message_from_bytes(body)
    (attachment,) = [p for p in message.walk() if p.get_filename() == "winmail.dat"]
    payload = attachment.get_payload(decode=True)
    assert isinstance(payload, bytes) and len(payload) == 10451
    assert hashlib.sha256(payload).hexdigest() == (
        "5f41c213e35d8421647181cc9b8925a5b2ab34c23102907581214fd574157fff"
    )


def test_reassembly_zeek_bdat_gap_capture_reports_zeeks_missed_bytes() -> None:
    path = PUBLIC / "zeek" / "smtp-bdat-gap.pcap"
    r = Reassembler()
    events = feed_all(r, read_pcap_segments(path)) + r.flush()
    flow = events[0].flow
    assert flow.gap_bytes == 1000  # zeek conn.log missed_bytes
    assert flow.gaps == [Gap(C, 200, 1000, flow.gaps[0].ts_ns)]
    assert ends(events) == ["fin"]
    assert data_of(events, C).endswith(b"QUIT\r\n")


def test_reassembly_ipv6_addresses_work_like_ipv4() -> None:
    a = (socket.inet_pton(socket.AF_INET6, "2001:db8::1"), 50000)
    b = (socket.inet_pton(socket.AF_INET6, "2001:db8::2"), 110)
    conn = Conn(client=a, server=b)
    events = feed_all(Reassembler(), [*conn.handshake(), conn.s(b"+OK\r\n"), conn.c(b"STAT\r\n")])
    assert data_of(events, S) == b"+OK\r\n" and data_of(events, C) == b"STAT\r\n"


# -- properties ----------------------------------------------------------------------------------

isns = st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 400, 2**32 - 1))


def _build(
    conn: Conn, stream: tuple[bytes, list[tuple[int, bytes]]], from_client: bool
) -> list[Segment]:
    _, pieces = stream
    make = conn.c_at if from_client else conn.s_at
    return [make(off, data, flags=TCP_ACK | TCP_PSH) for off, data in pieces]


def _fin_at(conn: Conn, length: int, from_client: bool) -> Segment:
    make = conn.c_at if from_client else conn.s_at
    return make(length, b"", flags=TCP_ACK | TCP_FIN)


@given(
    cisn=isns,
    sisn=isns,
    cstream=segmented_streams(),
    sstream=segmented_streams(),
    order=st.randoms(use_true_random=False),
    dups=st.lists(st.integers(0, 1000), max_size=6),
)
def test_reassembly_any_segmentation_order_and_duplication_yields_the_original_streams(
    cisn: int,
    sisn: int,
    cstream: tuple[bytes, list[tuple[int, bytes]]],
    sstream: tuple[bytes, list[tuple[int, bytes]]],
    order: object,
    dups: list[int],
) -> None:
    conn = Conn(cisn=cisn, sisn=sisn)
    r = Reassembler()
    events = feed_all(r, [conn.syn(), conn.syn_ack()])
    segs = _build(conn, cstream, True) + _build(conn, sstream, False)
    segs += [_fin_at(conn, len(cstream[0]), True), _fin_at(conn, len(sstream[0]), False)]
    segs += [segs[i % len(segs)] for i in dups]
    order.shuffle(segs)  # type: ignore[attr-defined]
    events += feed_all(r, segs)
    assert ends(events) == ["fin"]  # every byte up to both FINs arrived, so the flow closed
    assert data_of(events, C) == cstream[0]
    assert data_of(events, S) == sstream[0]
    assert gaps(events) == []
    assert r.flush() == []


@given(
    cisn=isns,
    cstream=segmented_streams(),
    sstream=segmented_streams(),
    order=st.randoms(use_true_random=False),
    drop=st.sets(st.integers(0, 60), max_size=20),
    acks=st.lists(st.tuples(st.booleans(), st.integers(0, 310)), max_size=5),
    max_segments=st.sampled_from([2, 5, 1024]),
)
def test_reassembly_with_segments_lost_data_and_gaps_account_for_every_byte_in_order(
    cisn: int,
    cstream: tuple[bytes, list[tuple[int, bytes]]],
    sstream: tuple[bytes, list[tuple[int, bytes]]],
    order: object,
    drop: set[int],
    acks: list[tuple[bool, int]],
    max_segments: int,
) -> None:
    conn = Conn(cisn=cisn, sisn=cisn ^ 0x5A5A5A5A)
    r = Reassembler(max_segments=max_segments)
    events = feed_all(r, [conn.syn(), conn.syn_ack()])
    data = _build(conn, cstream, True) + _build(conn, sstream, False)
    segs = [seg for i, seg in enumerate(data) if i not in drop]
    segs += [_fin_at(conn, len(cstream[0]), True), _fin_at(conn, len(sstream[0]), False)]
    # ACKs the receivers may send (never beyond what the sender sent, plus its FIN)
    for to_client, upto in acks:
        if to_client:
            segs.append(conn.s_ack(min(upto, len(cstream[0]) + 1)))
        else:
            segs.append(conn.c_ack(min(upto, len(sstream[0]) + 1)))
    order.shuffle(segs)  # type: ignore[attr-defined]
    events += feed_all(r, segs) + r.flush()
    for direction, (original, _) in ((C, cstream), (S, sstream)):
        delivered, missing = tile(events, direction, original)
        assert delivered + missing == len(original)
    flow = events[0].flow
    assert flow.client_bytes + flow.server_bytes == len(data_of(events, C) + data_of(events, S))
    assert sum(g.length for g in flow.gaps) == flow.gap_bytes
    assert len(ends(events)) == 1


@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 63),
            st.binary(max_size=40),
            st.integers(0, 50),
        ),
        max_size=40,
    )
)
def test_reassembly_arbitrary_segments_never_raise_and_stay_bounded(
    raw: list[tuple[bool, int, int, int, bytes, int]],
) -> None:
    r = Reassembler(max_buffer=64, max_segments=4)
    events: list[FlowEvent] = []
    for i, (from_client, seq, ack, flags, payload, missing) in enumerate(raw):
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        seg = Segment(i, src[0], src[1], dst[0], dst[1], seq, ack, flags, payload, missing)
        events += r.feed(seg)
        for c in r._halves.values():  # noqa: SLF001 - checking the bound itself
            for half in (c, c.peer):
                assert half.pending_bytes <= 64 and len(half.starts) <= 4
    events += r.flush()
    assert r.open_flows == 0
    starts = sum(isinstance(e, FlowStart) for e in events)
    assert starts == len(ends(events))
    assert all(e.length >= 0 for e in events if isinstance(e, FlowGap))


def test_reassembly_data_events_are_values_equal_to_constructed_ones() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    seg = conn.c(b"NOOP\r\n")
    (event,) = r.feed(seg)  # the in-order fast path builds the event
    assert isinstance(event, FlowData)
    assert event == FlowData(flow=event.flow, ts_ns=seg.ts_ns, direction=C, data=b"NOOP\r\n")
    assert event != FlowData(flow=event.flow, ts_ns=seg.ts_ns, direction=C, data=b"NOOP")


def test_reassembly_recorded_gaps_are_capped_but_all_are_counted() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    events: list[FlowEvent] = []
    for _ in range(MAX_GAPS_RECORDED + 5):
        events += r.feed(conn.c(b"x", missing=2))  # data then a gap: gaps never adjacent
    flow = events[0].flow
    assert len(gaps(events)) == flow.gap_count == MAX_GAPS_RECORDED + 5
    assert len(flow.gaps) == MAX_GAPS_RECORDED
    assert flow.gap_bytes == 2 * (MAX_GAPS_RECORDED + 5)


def test_reassembly_bytes_past_the_fin_are_not_stream_data() -> None:
    conn = Conn()
    r = Reassembler()
    feed_all(r, conn.handshake())
    r.feed(conn.c_at(6, b"", flags=TCP_ACK | TCP_FIN))
    events = r.feed(conn.c_at(0, b"QUIT\r\nJUNK"))
    assert data_of(events, C) == b"QUIT\r\n"
    assert data_of(r.feed(conn.c_at(6, b"MORE")), C) == b""


def test_reassembly_tombstones_expire_with_the_idle_timeout() -> None:
    conn = Conn()
    r = Reassembler(idle_timeout_ns=1_000)
    feed_all(r, [*conn.handshake(), conn.c_rst()])
    late = conn.c(b"late")
    assert r.feed(late) == []  # within the timeout: a trailing packet of the ended flow
    r.expire(late.ts_ns + 2_000)
    conn.ts = late.ts_ns + 2_000
    events = r.feed(conn.c(b"again"))
    assert [type(e) for e in events] == [FlowStart, FlowGap, FlowData]
    assert events[0].flow.id == 2 and events[0].flow.midstream
