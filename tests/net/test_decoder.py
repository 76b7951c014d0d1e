"""PacketDecoder: every link type, IPv4/IPv6, fragments, snaplen cuts, public captures, fuzz."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import open_capture
from mailsniff.errors import TruncatedCaptureError
from mailsniff.net.decoder import PacketDecoder
from mailsniff.net.link import LINK_DECODERS
from mailsniff.net.segment import TCP_ACK, TCP_PSH, Segment
from tests.paths import capture

SRC4, DST4 = "192.0.2.1", "198.51.100.2"
SRC6, DST6 = "2001:db8::1", "2001:db8:1::25"
PAYLOAD = b"MAIL FROM:<alice@example.com>\r\n"
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def _tcp(payload: bytes = PAYLOAD) -> TCP:
    return TCP(sport=40000, dport=25, seq=1000, ack=2000, flags="PA") / payload


def _ip4(payload: bytes = PAYLOAD) -> bytes:
    return bytes(IP(src=SRC4, dst=DST4) / _tcp(payload))


def _ip6(payload: bytes = PAYLOAD) -> bytes:
    return bytes(IPv6(src=SRC6, dst=DST6) / _tcp(payload))


def _segment(
    version: int = 4, payload: bytes = PAYLOAD, ts_ns: int = 7, missing: int = 0
) -> Segment:
    src, dst = (SRC4, DST4) if version == 4 else (SRC6, DST6)
    return Segment(
        ts_ns,
        ipaddress.ip_address(src).packed,
        40000,
        ipaddress.ip_address(dst).packed,
        25,
        1000,
        2000,
        TCP_PSH | TCP_ACK,
        payload,
        missing,
    )


def _decode(linktype: int, data: bytes, wirelen: int | None = None, ts_ns: int = 7):
    decoder = PacketDecoder()
    wire = len(data) if wirelen is None else wirelen
    return decoder.decode(Frame(ts_ns, linktype, data, wire)), decoder.stats


ETH = bytes(Ether(**MAC))[:12]  # dst + src
QINQ = bytes(Ether(**MAC) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IPv6(src=SRC6, dst=DST6) / _tcp())


@pytest.mark.parametrize(
    ("name", "linktype", "data", "version"),
    [
        ("ethernet", 1, bytes(Ether(**MAC) / IP(src=SRC4, dst=DST4) / _tcp()), 4),
        ("ethernet ipv6", 1, bytes(Ether(**MAC) / IPv6(src=SRC6, dst=DST6) / _tcp()), 6),
        ("802.1q", 1, bytes(Ether(**MAC) / Dot1Q(vlan=5) / IP(src=SRC4, dst=DST4) / _tcp()), 4),
        ("qinq 88a8", 1, QINQ, 6),
        ("qinq 9100", 1, ETH + b"\x91\x00\x00\x07\x81\x00\x00\x08\x08\x00" + _ip4(), 4),
        ("sll", 113, bytes(CookedLinux(proto=0x0800) / IP(src=SRC4, dst=DST4) / _tcp()), 4),
        ("sll vlan", 113, bytes(CookedLinux(proto=0x8100)) + b"\x00\x09\x08\x00" + _ip4(), 4),
        ("sll2", 276, bytes(CookedLinuxV2(proto=0x86DD) / IPv6(src=SRC6, dst=DST6) / _tcp()), 6),
        ("null le ipv4", 0, struct.pack("<I", 2) + _ip4(), 4),
        ("null be ipv4", 0, struct.pack(">I", 2) + _ip4(), 4),
        ("null ipv6 bsd", 0, struct.pack("<I", 24) + _ip6(), 6),
        ("null ipv6 freebsd", 0, struct.pack("<I", 28) + _ip6(), 6),
        ("null ipv6 darwin", 0, struct.pack("<I", 30) + _ip6(), 6),
        ("loop ipv4", 108, struct.pack(">I", 2) + _ip4(), 4),
        ("loop ipv6", 108, struct.pack(">I", 24) + _ip6(), 6),
        ("raw 101 v4", 101, _ip4(), 4),
        ("raw 101 v6", 101, _ip6(), 6),
        ("raw 12", 12, _ip4(), 4),
        ("raw 14", 14, _ip6(), 6),
        ("ipv4 228", 228, _ip4(), 4),
        ("ipv6 229", 229, _ip6(), 6),
    ],
)
def test_decoder_finds_the_tcp_segment_under_every_link_type(name, linktype, data, version):
    segment, stats = _decode(linktype, data)
    assert segment == _segment(version)
    assert (stats.frames, stats.tcp) == (1, 1)


def test_decoder_trims_ethernet_padding_by_the_ip_total_length():
    data = bytes(Ether(**MAC) / IP(src=SRC4, dst=DST4) / _tcp(b"")) + b"\0" * 6
    segment, _ = _decode(1, data)
    assert segment is not None and segment.payload == b""


def test_decoder_reads_ipv4_with_options():
    pkt = IP(src=SRC4, dst=DST4, options=b"\x01\x01\x01\x00") / _tcp()  # NOP NOP NOP EOL
    segment, _ = _decode(101, bytes(pkt))
    assert segment == _segment(4)


def test_decoder_ignores_an_invalid_ipv4_header_checksum():
    data = bytearray(_ip4())
    data[10:12] = b"\xde\xad"
    segment, _ = _decode(101, bytes(data))
    assert segment == _segment(4)


def test_decoder_walks_ipv6_extension_headers():
    pkt = (
        IPv6(src=SRC6, dst=DST6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
        / IPv6ExtHdrDestOpt()
        / _tcp()
    )
    segment, stats = _decode(229, bytes(pkt))
    assert segment == _segment(6)


def test_decoder_counts_non_ip_and_non_tcp_frames():
    decoder = PacketDecoder()
    arp = bytes(Ether(**MAC) / ARP())
    udp = bytes(Ether(**MAC) / IP(src=SRC4, dst=DST4) / UDP(dport=53) / b"q")
    udp6 = bytes(IPv6(src=SRC6, dst=DST6) / UDP(dport=53))
    for linktype, data in [(1, arp), (1, udp), (229, udp6)]:
        assert decoder.decode(Frame(0, linktype, data, len(data))) is None
    assert (decoder.stats.non_ip, decoder.stats.non_tcp, decoder.stats.tcp) == (1, 2, 0)


def test_decoder_counts_frames_of_unsupported_link_types():
    decoder = PacketDecoder()
    for _ in range(3):
        assert decoder.decode(Frame(0, 105, b"\x80\0" * 20, 40)) is None
    assert decoder.stats.unsupported_linktype == {105: 3}


def test_decoder_counts_invalid_headers_as_malformed():
    bad_ihl = bytearray(_ip4())
    bad_ihl[0] = 0x43  # IHL 3 words < 20 bytes
    bad_offset = bytearray(_ip4())
    bad_offset[20 + 12] = 0x30  # TCP data offset 3 words
    decoder = PacketDecoder()
    for data in (bytes(bad_ihl), bytes(bad_offset), b"\x45\x00"):
        assert decoder.decode(Frame(0, 101, data, len(data))) is None
    assert decoder.stats.malformed == 3
    assert decoder.stats.truncated == 0


def test_decoder_reports_payload_bytes_the_snaplen_cut_as_missing():
    data = bytes(Ether(**MAC) / IP(src=SRC4, dst=DST4) / _tcp())
    segment, stats = _decode(1, data[:-10], wirelen=len(data))
    assert segment == _segment(4, PAYLOAD[:-10], missing=10)
    assert stats.truncated == 1


def test_decoder_reports_ipv6_payload_cut_by_the_snaplen():
    data = _ip6()
    segment, _ = _decode(229, data[:-5], wirelen=len(data))
    assert segment == _segment(6, PAYLOAD[:-5], missing=5)


def test_decoder_counts_a_snaplen_cut_inside_the_headers_as_truncated():
    data = bytes(Ether(**MAC) / IP(src=SRC4, dst=DST4) / _tcp())
    segment, stats = _decode(1, data[:30], wirelen=len(data))
    assert segment is None
    assert (stats.truncated, stats.malformed) == (1, 0)


def test_decoder_reassembles_ipv4_fragments_arriving_out_of_order():
    payload = bytes(range(256)) * 8
    frags = fragment(IP(src=SRC4, dst=DST4, id=77) / _tcp(payload), fragsize=400)
    assert len(frags) > 3
    decoder = PacketDecoder()
    raws = [bytes(f) for f in reversed(frags)]
    results = [decoder.decode(Frame(i, 101, raw, len(raw))) for i, raw in enumerate(raws)]
    assert results[:-1] == [None] * (len(frags) - 1)
    assert results[-1] == _segment(4, payload, ts_ns=len(frags) - 1)
    stats = decoder.stats
    assert (stats.fragments, stats.reassembled, stats.fragments_dropped) == (len(frags), 1, 0)


def _frag4(offset: int, data: bytes, more: bool, ident: int = 9) -> bytes:
    return bytes(
        IP(src=SRC4, dst=DST4, id=ident, proto=6, flags="MF" if more else 0, frag=offset // 8)
        / Raw(data)
    )


def test_decoder_keeps_the_first_copy_of_overlapping_fragment_bytes():
    tcp = bytes(_tcp(b"0123456789abcdefghijklmnopqrstuvwxyz"))
    frames = [
        _frag4(0, tcp[:32], True),
        _frag4(24, b"ZZZZZZZZ" + tcp[32:48], True),  # bytes 24-32 overlap: the first copy wins
        _frag4(48, tcp[48:], False),
    ]
    decoder = PacketDecoder()
    out = [decoder.decode(Frame(0, 101, f, len(f))) for f in frames]
    assert out[-1] == _segment(4, b"0123456789abcdefghijklmnopqrstuvwxyz", ts_ns=0)


def test_decoder_drops_fragments_of_a_set_that_timed_out():
    tcp = bytes(_tcp())
    decoder = PacketDecoder(fragment_timeout_ns=1_000_000_000)
    first, last = _frag4(0, tcp[:24], True), _frag4(24, tcp[24:], False)
    assert decoder.decode(Frame(0, 101, first, len(first))) is None
    assert decoder.decode(Frame(2_000_000_000, 101, last, len(last))) is None
    assert decoder.stats.fragments_dropped == 1  # the first one, expired
    assert decoder.defrag.expired == 1
    assert decoder.defrag.pending == 1  # the last one waits for a first that will not come
    decoder.finish()
    assert decoder.stats.fragments_dropped == 2


def test_decoder_evicts_the_oldest_set_when_too_many_are_pending():
    tcp = bytes(_tcp())
    decoder = PacketDecoder(max_fragment_sets=2)
    for ident in (1, 2, 3):
        first = _frag4(0, tcp[:24], True, ident=ident)
        decoder.decode(Frame(ident, 101, first, len(first)))
    assert decoder.defrag.evicted == 1
    assert decoder.defrag.pending == 2
    last = _frag4(24, tcp[24:], False, ident=1)  # set 1 was evicted: no datagram
    assert decoder.decode(Frame(4, 101, last, len(last))) is None
    last = _frag4(24, tcp[24:], False, ident=3)
    assert decoder.decode(Frame(5, 101, last, len(last))) == _segment(4, ts_ns=5)


def test_decoder_drops_a_fragment_the_snaplen_cut():
    tcp = bytes(_tcp())
    first = _frag4(0, tcp[:24], True)
    segment, stats = _decode(101, first[:-4], wirelen=len(first))
    assert segment is None
    assert (stats.fragments, stats.fragments_dropped, stats.truncated) == (1, 1, 1)


def test_decoder_reassembles_ipv6_fragments():
    payload = b"x" * 3000
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrFragment(id=5) / _tcp(payload)
    frags = fragment6(pkt, 1280)
    assert len(frags) == 3
    decoder = PacketDecoder()
    out = [decoder.decode(Frame(1, 229, bytes(f), len(bytes(f)))) for f in reversed(frags)]
    assert out == [None, None, _segment(6, payload, ts_ns=1)]
    assert decoder.stats.reassembled == 1


tcp_packets = st.builds(
    lambda sport, dport, seq, ack, flags, payload, options: (
        IP(src=SRC4, dst=DST4, options=b"\x01\x01\x01\x00" if options else b"")
        / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
              options=[("NOP", None), ("MSS", 1460)] if options else [])
        / payload
    ),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.binary(max_size=300),
    st.booleans(),
)  # fmt: skip


@given(tcp_packets)
def test_decoder_agrees_with_scapy_on_every_tcp_field(pkt):
    data = bytes(Ether(**MAC) / pkt)
    segment, _ = _decode(1, data, ts_ns=3)
    tcp = pkt[TCP]
    assert segment == Segment(
        3,
        ipaddress.ip_address(SRC4).packed,
        tcp.sport,
        ipaddress.ip_address(DST4).packed,
        tcp.dport,
        tcp.seq,
        tcp.ack,
        int(tcp.flags),
        bytes(tcp.payload),
        0,
    )


LINKTYPES = sorted(LINK_DECODERS) + [105, 9999]


@given(st.sampled_from(LINKTYPES), st.binary(max_size=200), st.integers(0, 300))
def test_decoder_never_raises_on_arbitrary_bytes(linktype, data, wirelen):
    decoder = PacketDecoder()
    result = decoder.decode(Frame(0, linktype, data, wirelen))
    assert result is None or isinstance(result, Segment)
    stats = decoder.stats
    counted = (
        stats.tcp + stats.non_ip + stats.non_tcp + stats.malformed + stats.fragments
        + sum(stats.unsupported_linktype.values())
    )  # fmt: skip
    assert counted + stats.truncated >= 1  # every frame lands in some counter


VALID = [
    (1, bytes(Ether(**MAC) / Dot1Q() / IP(src=SRC4, dst=DST4, options=b"\x01" * 4) / _tcp())),
    (1, bytes(Ether(**MAC) / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / _tcp())),
    (113, bytes(CookedLinux(proto=0x0800) / IP() / _tcp())),
    (276, bytes(CookedLinuxV2(proto=0x86DD) / IPv6() / IPv6ExtHdrDestOpt() / _tcp())),
    (0, struct.pack("<I", 2) + bytes(IP(flags="MF") / _tcp())),
    (108, struct.pack(">I", 24) + _ip6()),
]


@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255))))
def test_decoder_never_raises_on_mutated_valid_frames(sample, mutations):
    linktype, data = sample
    mutated = bytearray(data)
    for pos, value in mutations:
        if pos < len(mutated):
            mutated[pos] = value
    decoder = PacketDecoder()
    for cut in (len(mutated), len(mutated) // 2, 20):
        result = decoder.decode(Frame(0, linktype, bytes(mutated[:cut]), len(mutated)))
        assert result is None or isinstance(result, Segment)


# Expected values from tshark on the same files: -Y 'tcp.dstport==25 || tcp.dstport==110'
# counts frames, and -T fields -e tcp.len summed gives the payload bytes in each direction.
PUBLIC_CAPTURES = [
    # name, linktype, frames, to-server segments, to-server bytes, from-server bytes, addresses
    ("zeek/pop3-starttls.pcap", 0, 33, 16, 851, 2590, {("192.168.4.149", "192.168.4.149", 110)}),
    ("suricata-verify/smtp-pipelining.pcap", 0, 18, 9, 104, 298,
     {("127.0.0.1", "127.0.0.1", 25)}),
    ("ndpi/smtp-starttls.pcap", 1, 69, 33, 3118, 6724,
     {("10.0.0.1", "173.194.68.26", 25),
      ("2003:de:2016:125:fc36:8317:4e86:cb72", "2003:de:2016:120::a08:53", 25)}),
    ("ndpi/pop3.pcapng", 1, 144, 70, 417, 22283,
     {("192.168.0.4", "212.227.15.166", 110), ("143.225.229.181", "74.208.5.28", 110)}),
    ("zeek/smtp-bdat-cmd-invalid.pcapng", 1, 66, 39, 269, 783, {("127.0.0.1", "127.0.0.1", 25)}),
    # the stand-in for suricata-verify's damaged smtp-to-comma.pcap: its 18 records are upstream's
    ("equivalents/smtp-to-comma.pcap", 1, 18, 8, 1683, 712,
     {("10.7.29.101", "178.63.41.150", 25)}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "linktype", "frames", "to_server", "up", "down", "addresses"), PUBLIC_CAPTURES
)
def test_decoder_decodes_public_captures_like_tshark(
    name, linktype, frames, to_server, up, down, addresses
):
    decoder = PacketDecoder()
    segments = []
    try:
        with open_capture(str(capture(name))) as reader:
            for frame in reader:
                assert frame.linktype == linktype
                segment = decoder.decode(frame)
                if segment is not None:
                    segments.append(segment)
    except TruncatedCaptureError:
        assert name.endswith("smtp-to-comma.pcap")  # the damaged one
    assert decoder.stats.frames == decoder.stats.tcp == frames
    inbound = [s for s in segments if s.dport in (25, 110)]
    outbound = [s for s in segments if s.sport in (25, 110)]
    assert len(inbound) == to_server
    assert sum(len(s.payload) for s in inbound) == up
    assert sum(len(s.payload) for s in outbound) == down
    assert {
        (str(ipaddress.ip_address(s.src)), str(ipaddress.ip_address(s.dst)), s.dport)
        for s in inbound
    } == addresses
