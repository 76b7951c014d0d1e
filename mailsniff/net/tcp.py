"""TCP header decoding (RFC 9293 3.1) into Segments."""

from __future__ import annotations

import struct

from mailsniff.net.segment import Segment

__all__ = ["TCP_HEADER", "parse_tcp"]

#: sport, dport, seq, ack, data offset (high nibble), flags.
TCP_HEADER = struct.Struct("!HHIIBB")
_TCP = TCP_HEADER.unpack_from


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
    return Segment(ts_ns, src, sport, dst, dport, seq, ack, flags, data[start:end], missing)
