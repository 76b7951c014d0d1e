"""IPv4 (RFC 791) and IPv6 (RFC 8200) header decoding, extension headers included."""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "PROTO_TCP",
    "IPv4Header",
    "IPv6Header",
    "IPV4_HEADER",
    "IPV4_MF",
    "IPV4_OFFSET_MASK",
    "parse_ipv4",
    "parse_ipv6",
    "skip_ipv6_extensions",
]

PROTO_TCP: Final = 6
IPV4_MF: Final = 0x2000
IPV4_OFFSET_MASK: Final = 0x1FFF

#: version+IHL, total length, identification, flags+fragment offset, protocol, src, dst.
IPV4_HEADER = struct.Struct("!BxHHHxB2x4s4s")
_IPV4: Final = IPV4_HEADER.unpack_from
_IPV6: Final = struct.Struct("!IHBx16s16s").unpack_from
_IPV6_FRAG: Final = struct.Struct("!BxHI").unpack_from

#: RFC 8200 4.3-4.6 headers that are walked over: hop-by-hop, routing, destination options.
_IPV6_SKIPPED: Final = frozenset({0, 43, 60})
_IPV6_FRAGMENT: Final = 44
_IPV6_AH: Final = 51  # RFC 4302: length in 4-byte units minus 2

#: (proto, src, dst, payload start, payload end, bytes missing, flags+offset field, id)
IPv4Header = tuple[int, bytes, bytes, int, int, int, int, int]
#: (next header, src, dst, payload start, payload end, bytes missing,
#:  fragment (id, offset, more) or None)
IPv6Header = tuple[int, bytes, bytes, int, int, int, tuple[int, int, bool] | None]


def parse_ipv4(data: bytes, off: int) -> IPv4Header | None:
    """Decode the IPv4 header at ``off`` (RFC 791 3.1).

    The header checksum is not checked (offloading leaves it zero in many captures). The
    total length trims Ethernet padding; when the capture holds less than it says, the
    payload ends at the captured end and the shortfall is reported as missing. A total
    length of 0 (TCP segmentation offload) means "up to the captured end".

    Args:
        data: the frame.
        off: where the IPv4 header starts.

    Returns:
        The header fields, or None when the header is cut or invalid.
    """
    if off + 20 > len(data):
        return None
    vihl, total, ident, frag, proto, src, dst = _IPV4(data, off)
    ihl = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or ihl < 20:
        return None
    size = len(data)
    start = off + ihl
    if total == 0:
        end = size
    else:
        if total < ihl:
            return None
        end = off + total
    if start > size:
        return None
    missing = 0
    if end > size:
        missing = end - size
        end = size
    return proto, src, dst, start, end, missing, frag, ident


def skip_ipv6_extensions(
    nh: int, data: bytes, p: int, end: int
) -> tuple[int, int, tuple[int, int, bool] | None] | None:
    """Walk IPv6 extension headers (RFC 8200 4) up to the upper layer or a fragment header.

    Returns:
        (next header, offset after the walked headers, fragment (id, offset, more) or None),
        or None when a header runs past ``end``.
    """
    while True:
        if nh in _IPV6_SKIPPED:
            if p + 2 > end:
                return None
            nh, length = data[p], (data[p + 1] + 1) << 3
            p += length
        elif nh == _IPV6_AH:
            if p + 2 > end:
                return None
            nh, length = data[p], (data[p + 1] + 2) << 2
            p += length
        elif nh == _IPV6_FRAGMENT:
            if p + 8 > end:
                return None
            nh, offset_flags, ident = _IPV6_FRAG(data, p)
            return nh, p + 8, (ident, offset_flags & 0xFFF8, bool(offset_flags & 1))
        else:
            if p > end:
                return None
            return nh, p, None


def parse_ipv6(data: bytes, off: int) -> IPv6Header | None:
    """Decode the IPv6 header at ``off`` and its extension headers (RFC 8200 3, 4).

    Args:
        data: the frame.
        off: where the IPv6 header starts.

    Returns:
        The header fields (next header is the upper-layer protocol, or the one after a
        fragment header), or None when a header is cut or invalid.
    """
    if off + 40 > len(data):
        return None
    vtf, plen, nh, src, dst = _IPV6(data, off)
    if vtf >> 28 != 6:
        return None
    size = len(data)
    start = off + 40
    end = size if plen == 0 else start + plen  # 0: jumbogram or segmentation offload
    missing = 0
    if end > size:
        missing = end - size
        end = size
    walked = skip_ipv6_extensions(nh, data, start, end)
    if walked is None:
        return None
    nh, start, frag = walked
    return nh, src, dst, start, end, missing, frag
