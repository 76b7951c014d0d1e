"""Segment builders and Hypothesis strategies for the TCP reassembly tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from mailsniff.net.segment import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment
from mailsniff.protocols.base import Direction
from mailsniff.reassembly import FlowData, FlowEnd, FlowEvent, FlowGap, Reassembler

__all__ = [
    "CLIENT",
    "SERVER",
    "Conn",
    "data_of",
    "feed_all",
    "read_pcap_segments",
    "segmented_streams",
    "tile",
]

CLIENT: tuple[bytes, int] = (bytes([192, 0, 2, 1]), 40000)
SERVER: tuple[bytes, int] = (bytes([198, 51, 100, 7]), 25)
MASK = 0xFFFFFFFF


@dataclass
class Conn:
    """One synthetic connection: builds segments with the right sequence numbers.

    `cseq` / `sseq` are the next sequence numbers each side will send; `ts` advances by 1 ms per
    segment built.
    """

    cisn: int = 1000
    sisn: int = 900_000
    client: tuple[bytes, int] = CLIENT
    server: tuple[bytes, int] = SERVER
    ts: int = 1_000_000_000

    def __post_init__(self) -> None:
        self.cseq = (self.cisn + 1) & MASK
        self.sseq = (self.sisn + 1) & MASK

    def _seg(
        self, from_client: bool, seq: int, ack: int, flags: int, payload: bytes, missing: int
    ) -> Segment:
        self.ts += 1_000_000
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        return Segment(
            ts_ns=self.ts,
            src=src[0],
            sport=src[1],
            dst=dst[0],
            dport=dst[1],
            seq=seq & MASK,
            ack=ack & MASK,
            flags=flags,
            payload=payload,
            missing=missing,
        )

    def syn(self) -> Segment:
        return self._seg(True, self.cisn, 0, TCP_SYN, b"", 0)

    def syn_ack(self) -> Segment:
        return self._seg(False, self.sisn, self.cseq, TCP_SYN | TCP_ACK, b"", 0)

    def handshake(self) -> list[Segment]:
        return [self.syn(), self.syn_ack(), self.c(b"")]

    def c(
        self, data: bytes, *, flags: int = TCP_ACK, missing: int = 0, ack: int | None = None
    ) -> Segment:
        """Client sends `data` (plus `missing` cut bytes) at its next sequence number."""
        seg = self._seg(True, self.cseq, self.sseq if ack is None else ack, flags, data, missing)
        self.cseq = (self.cseq + len(data) + missing + (1 if flags & TCP_FIN else 0)) & MASK
        return seg

    def s(
        self, data: bytes, *, flags: int = TCP_ACK, missing: int = 0, ack: int | None = None
    ) -> Segment:
        """Server sends `data` (plus `missing` cut bytes) at its next sequence number."""
        seg = self._seg(False, self.sseq, self.cseq if ack is None else ack, flags, data, missing)
        self.sseq = (self.sseq + len(data) + missing + (1 if flags & TCP_FIN else 0)) & MASK
        return seg

    def c_fin(self) -> Segment:
        return self.c(b"", flags=TCP_FIN | TCP_ACK)

    def s_fin(self) -> Segment:
        return self.s(b"", flags=TCP_FIN | TCP_ACK)

    def c_rst(self) -> Segment:
        return self._seg(True, self.cseq, self.sseq, TCP_RST | TCP_ACK, b"", 0)

    def c_at(self, offset: int, data: bytes, *, flags: int = TCP_ACK) -> Segment:
        """Client segment at a given stream offset (does not move `cseq`)."""
        return self._seg(True, self.cisn + 1 + offset, self.sseq, flags, data, 0)

    def s_at(self, offset: int, data: bytes, *, flags: int = TCP_ACK) -> Segment:
        return self._seg(False, self.sisn + 1 + offset, self.cseq, flags, data, 0)

    def c_ack(self, server_offset: int) -> Segment:
        """Client pure ACK acknowledging the server's stream up to `server_offset`."""
        return self._seg(True, self.cseq, self.sisn + 1 + server_offset, TCP_ACK, b"", 0)

    def s_ack(self, client_offset: int) -> Segment:
        """Server pure ACK acknowledging the client's stream up to `client_offset`."""
        return self._seg(False, self.sseq, self.cisn + 1 + client_offset, TCP_ACK, b"", 0)


def feed_all(r: Reassembler, segments: list[Segment]) -> list[FlowEvent]:
    events: list[FlowEvent] = []
    for seg in segments:
        events.extend(r.feed(seg))
    return events


def data_of(events: list[FlowEvent], direction: Direction) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, FlowData) and e.direction is direction)


def tile(events: list[FlowEvent], direction: Direction, original: bytes) -> tuple[int, int]:
    """Assert data and gaps of one direction cover the stream in order; return (data, gap) bytes.

    Every FlowData must hold exactly the original bytes at the running offset, and every FlowGap
    must start where the previous event ended.
    """
    pos = 0
    delivered = missing = 0
    for e in events:
        if isinstance(e, FlowEnd):
            break
        if getattr(e, "direction", None) is not direction:
            continue
        if isinstance(e, FlowGap):
            if e.length == 0 and e.offset == 0:
                continue
            assert e.offset == pos, (e, pos)
            pos += e.length
            missing += e.length
        elif isinstance(e, FlowData):
            assert e.data == original[pos : pos + len(e.data)], (pos, e.data)
            pos += len(e.data)
            delivered += len(e.data)
    assert pos == len(original)
    return delivered, missing


@st.composite
def segmented_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A byte stream and a cover of it by (offset, bytes) segments, possibly overlapping."""
    data = draw(st.binary(min_size=1, max_size=300))
    cuts = (
        sorted(draw(st.sets(st.integers(1, len(data) - 1), max_size=20))) if len(data) > 1 else []
    )
    bounds = [0, *cuts, len(data)]
    pieces = [(a, data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    # Overlapping retransmissions with the same bytes: a random span re-sent.
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 40)), max_size=4))
    for start, length in extra:
        pieces.append((start, data[start : start + length]))
    return data, pieces


def read_pcap_segments(path: Path) -> list[Segment]:
    """TCP segments of a little-endian microsecond Ethernet/IPv4 pcap.

    Deliberately minimal and independent of `mailsniff.capture`/`mailsniff.net`, so the reassembly
    tests exercise only the reassembler.
    """
    raw = path.read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1" and struct.unpack_from("<I", raw, 20)[0] == 1
    pos = 24
    out: list[Segment] = []
    while pos + 16 <= len(raw):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", raw, pos)
        frame = raw[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        ip = frame[14:]
        if frame[12:14] != b"\x08\x00" or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl : struct.unpack_from("!H", ip, 2)[0]]
        sport, dport, seq, ack, off = struct.unpack_from("!HHIIB", tcp)
        out.append(
            Segment(
                ts_ns=sec * 1_000_000_000 + usec * 1000,
                src=ip[12:16],
                sport=sport,
                dst=ip[16:20],
                dport=dport,
                seq=seq,
                ack=ack,
                flags=tcp[13],
                payload=bytes(tcp[(off >> 4) * 4 :]),
            )
        )
    return out
