"""TCP header decoding (RFC 9293 3.1) into Segments."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields

from mailsniff.net.segment import Segment

__all__ = ["TCP_HEADER", "new_segment", "parse_tcp"]

#: sport, dport, seq, ack, data offset (high nibble), flags.
TCP_HEADER = struct.Struct("!HHIIBB")
_TCP = TCP_HEADER.unpack_from

_SEGMENT_FIELDS = (
    "ts_ns", "src", "sport", "dst", "dport", "seq", "ack", "flags", "payload", "missing"
)  # fmt: skip


SegmentFactory = Callable[[int, bytes, int, bytes, int, int, int, int, bytes, int], Segment]


def _slot_filler() -> SegmentFactory:
    """Build a Segment constructor that fills the slots directly.

    A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``, which
    costs about 1 us for Segment's ten fields: half the per-frame budget. Writing the slot
    descriptors directly builds the identical (equal, hashable, frozen) object twice as fast.
    If Segment's fields ever change, the ordinary constructor is used instead.
    """
    if tuple(f.name for f in fields(Segment)) != _SEGMENT_FIELDS:
        return Segment
    new = object.__new__
    (ts_ns, src, sport, dst, dport, seq, ack, flags, payload, missing) = (
        getattr(Segment, name).__set__ for name in _SEGMENT_FIELDS
    )

    def build(
        a: int, b: bytes, c: int, d: bytes, e: int, f: int, g: int, h: int, i: bytes, j: int
    ) -> Segment:
        seg = new(Segment)
        ts_ns(seg, a)
        src(seg, b)
        sport(seg, c)
        dst(seg, d)
        dport(seg, e)
        seq(seg, f)
        ack(seg, g)
        flags(seg, h)
        payload(seg, i)
        missing(seg, j)
        return seg

    return build


#: new_segment(ts_ns, src, sport, dst, dport, seq, ack, flags, payload, missing) -> Segment,
#: positional only, the fast equivalent of Segment(...).
new_segment: SegmentFactory = _slot_filler()


def parse_tcp(
    ts_ns: int, src: bytes, dst: bytes, data: bytes, off: int, end: int, missing: int
) -> Segment | None:
    """Decode the TCP header at ``off``; the payload runs to ``end``.

    Args:
        ts_ns: capture time.
        src: packed source address.
        dst: packed destination address.
        data: the packet bytes.
        off: where the TCP header starts.
        end: where the IP payload ends (in ``data``).
        missing: IP payload bytes the snaplen cut off; they belong to the TCP payload.

    Returns:
        A Segment, or None when the header (options included) is not all there or its data
        offset is below 5 words.
    """
    if off + 20 > end:
        return None
    sport, dport, seq, ack, doff, flags = _TCP(data, off)
    start = off + ((doff >> 4) << 2)
    if start > end or doff < 0x50:
        return None
    return new_segment(ts_ns, src, sport, dst, dport, seq, ack, flags, data[start:end], missing)
