"""Frame -> TCP Segment: link layer, IPv4/IPv6 (RFC 791, 8200) with reassembly, TCP (RFC 9293)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from mailsniff import limits
from mailsniff.capture.frame import LINKTYPE_ETHERNET, NATIVE, Frame
from mailsniff.net.defrag import Defragmenter
from mailsniff.net.ip import (
    IPV4_HEADER,
    IPV4_MF,
    IPV4_OFFSET_MASK,
    PROTO_TCP,
    parse_ipv4,
    parse_ipv6,
    skip_ipv6_extensions,
)
from mailsniff.net.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINK_DECODERS, MALFORMED
from mailsniff.net.segment import Segment
from mailsniff.net.tcp import TCP_HEADER, parse_tcp

__all__ = ["DecodeStats", "PacketDecoder"]

_FRAGMENTED: Final = IPV4_MF | IPV4_OFFSET_MASK
_IPV4: Final = IPV4_HEADER.unpack_from
_TCP: Final = TCP_HEADER.unpack_from
#: Ethernet type, then the IPv4 and TCP headers, as one struct for the commonest frame.
_ETH_IPV4_TCP: Final = struct.Struct(
    "!H" + IPV4_HEADER.format[1:] + TCP_HEADER.format[1:]
).unpack_from
#: Next-header values worth reassembling an IPv6 fragment for: TCP, or an extension header
#: that may stand in front of it inside the fragmentable part.
_IPV6_REASSEMBLED: Final = frozenset({PROTO_TCP, 0, 43, 60, 51})


@dataclass(slots=True)
class DecodeStats:
    """What the decoder saw, frame by frame."""

    frames: int = 0
    #: TCP segments handed on.
    tcp: int = 0
    #: Frames whose link layer carries something other than IPv4/IPv6 (ARP, LLDP, ...).
    non_ip: int = 0
    #: IP packets of another protocol (UDP, ICMP, ...).
    non_tcp: int = 0
    #: Frames whose headers are invalid or shorter than they claim.
    malformed: int = 0
    #: Frames the snaplen cut (a segment with ``missing`` > 0, or nothing usable at all).
    truncated: int = 0
    #: IP fragments of TCP datagrams received.
    fragments: int = 0
    #: Datagrams rebuilt from fragments.
    reassembled: int = 0
    #: Fragments discarded (set expired, evicted, oversized, or the fragment was cut).
    fragments_dropped: int = 0
    #: LINKTYPE_ value -> frames of that type that could not be decoded.
    unsupported_linktype: dict[int, int] = field(default_factory=dict)


class PacketDecoder:
    """Decodes captured frames down to TCP segments, without per-packet object dissection.

    ``decode`` never raises: anything it cannot use is counted in ``stats`` and yields None.
    """

    def __init__(
        self,
        *,
        max_fragment_bytes: int = limits.MAX_FRAGMENT_BYTES,
        max_fragment_sets: int = limits.MAX_PENDING_FRAGMENT_SETS,
        fragment_timeout_ns: int = limits.FRAGMENT_TIMEOUT_NS,
    ) -> None:
        self.stats = DecodeStats()
        self.defrag = Defragmenter(
            max_bytes=max_fragment_bytes,
            max_sets=max_fragment_sets,
            timeout_ns=fragment_timeout_ns,
        )
        self._links = LINK_DECODERS

    def decode(self, frame: Frame) -> Segment | None:
        """Decode one frame.

        Args:
            frame: a captured frame.

        Returns:
            The TCP segment it carries, or None (not TCP, not IP, malformed, unsupported link
            type, or a fragment of a datagram still incomplete).
        """
        stats = self.stats
        stats.frames += 1
        data = frame.data
        linktype = frame.linktype
        if linktype == LINKTYPE_ETHERNET and len(data) >= 54:
            # Fastest path: Ethernet + IPv4 (no options, unfragmented) + TCP. The compiled
            # build reads the fields byte by byte, on machine integers (capture.frame.NATIVE;
            # offsets: EtherType 12, IPv4 header 14, TCP header 34); interpreted, one struct
            # unpack is the faster. The fields are declared: the compiled build unboxes each
            # struct field once.
            ethertype: int
            vihl: int
            total: int
            frag: int
            proto: int
            src: bytes
            dst: bytes
            sport: int
            dport: int
            seq: int
            ack: int
            doff: int
            flags: int
            if NATIVE:
                ethertype = data[12] << 8 | data[13]
                vihl = data[14]
                total = data[16] << 8 | data[17]
                frag = data[20] << 8 | data[21]
                proto = data[23]
                src = data[26:30]
                dst = data[30:34]
                sport = data[34] << 8 | data[35]
                dport = data[36] << 8 | data[37]
                seq = data[38] << 24 | data[39] << 16 | data[40] << 8 | data[41]
                ack = data[42] << 24 | data[43] << 16 | data[44] << 8 | data[45]
                doff = data[46]
                flags = data[47]
            else:
                (ethertype, vihl, total, _ident, frag, proto, src, dst,
                 sport, dport, seq, ack, doff, flags) = _ETH_IPV4_TCP(data, 12)  # fmt: skip
            end = 14 + total
            if (
                ethertype == ETHERTYPE_IPV4
                and vihl == 0x45
                and proto == PROTO_TCP
                and not frag & _FRAGMENTED
                and 40 <= total
                and end <= len(data)
                and doff >= 0x50
            ):
                start = 34 + ((doff >> 4) << 2)
                if start <= end:
                    stats.tcp += 1
                    return Segment(
                        frame.ts_ns, src, sport, dst, dport, seq, ack, flags,
                        data[start:end], 0,
                    )  # fmt: skip
        link = self._links.get(linktype)
        if link is None:
            counts = stats.unsupported_linktype
            counts[linktype] = counts.get(linktype, 0) + 1
            return None
        try:
            ethertype, off = link(data)
            if ethertype == ETHERTYPE_IPV4:
                # Fast path for the common case: a whole, unfragmented IPv4 packet without
                # options carrying TCP. It computes exactly what _ipv4 and parse_tcp would
                # (tests check both agree); anything else takes the general path.
                if off + 40 <= len(data):
                    vihl, total, _ident, frag, proto, src, dst = _IPV4(data, off)
                    end = off + total
                    if (
                        vihl == 0x45
                        and proto == PROTO_TCP
                        and not frag & _FRAGMENTED
                        and 40 <= total
                        and end <= len(data)
                    ):
                        sport, dport, seq, ack, doff, flags = _TCP(data, off + 20)
                        start = off + 20 + ((doff >> 4) << 2)
                        if doff >= 0x50 and start <= end:
                            stats.tcp += 1
                            return Segment(
                                frame.ts_ns, src, sport, dst, dport, seq, ack, flags,
                                data[start:end], 0,
                            )  # fmt: skip
                return self._ipv4(frame, data, off)
            if ethertype == ETHERTYPE_IPV6:
                return self._ipv6(frame, data, off)
            if ethertype == MALFORMED:
                self._bad(frame)
            else:
                stats.non_ip += 1
        except (struct.error, IndexError, ValueError):  # a bug guard: bytes never raise
            stats.malformed += 1
        return None

    def finish(self) -> None:
        """End of capture: fragment sets still incomplete are dropped and counted."""
        self.defrag.flush()
        self.stats.fragments_dropped = self.defrag.dropped

    def _bad(self, frame: Frame) -> None:
        """A header did not fit: the snaplen's doing if the frame was cut, else malformed."""
        if frame.wirelen > len(frame.data):
            self.stats.truncated += 1
        else:
            self.stats.malformed += 1

    def _ipv4(self, frame: Frame, data: bytes, off: int) -> Segment | None:
        header = parse_ipv4(data, off)
        if header is None:
            self._bad(frame)
            return None
        proto, src, dst, start, end, missing, frag, ident = header
        if proto != PROTO_TCP:
            self.stats.non_tcp += 1
            return None
        if frag & _FRAGMENTED:
            payload = self._fragment(
                frame.ts_ns,
                (src, dst, proto, ident),
                (frag & IPV4_OFFSET_MASK) << 3,
                bool(frag & IPV4_MF),
                data[start:end],
                missing,
            )
            if payload is None:
                return None
            data, start, end, missing = payload, 0, len(payload), 0
        return self._tcp(frame.ts_ns, src, dst, data, start, end, missing)

    def _ipv6(self, frame: Frame, data: bytes, off: int) -> Segment | None:
        header = parse_ipv6(data, off)
        if header is None:
            self._bad(frame)
            return None
        nh, src, dst, start, end, missing, frag = header
        if frag is not None:
            if nh not in _IPV6_REASSEMBLED:
                self.stats.non_tcp += 1
                return None
            ident, offset, more = frag
            payload = self._fragment(
                frame.ts_ns, (src, dst, nh, ident), offset, more, data[start:end], missing
            )
            if payload is None:
                return None
            walked = skip_ipv6_extensions(nh, payload, 0, len(payload))
            if walked is None or walked[2] is not None:
                self.stats.malformed += 1
                return None
            nh, start, _ = walked
            data, end, missing = payload, len(payload), 0
        if nh != PROTO_TCP:
            self.stats.non_tcp += 1
            return None
        return self._tcp(frame.ts_ns, src, dst, data, start, end, missing)

    def _fragment(
        self,
        ts_ns: int,
        key: tuple[bytes, bytes, int, int],
        offset: int,
        more: bool,
        data: bytes,
        missing: int,
    ) -> bytes | None:
        stats = self.stats
        stats.fragments += 1
        if missing:  # a fragment the snaplen cut can never complete its datagram
            stats.truncated += 1
            self.defrag.dropped += 1
            stats.fragments_dropped = self.defrag.dropped
            return None
        defrag = self.defrag
        payload = defrag.add(ts_ns, key, offset, more, data)
        stats.fragments_dropped = defrag.dropped
        if payload is not None:
            stats.reassembled += 1
        return payload

    def _tcp(
        self, ts_ns: int, src: bytes, dst: bytes, data: bytes, start: int, end: int, missing: int
    ) -> Segment | None:
        stats = self.stats
        segment = parse_tcp(ts_ns, src, dst, data, start, end, missing)
        if segment is None:
            if missing:
                stats.truncated += 1
            else:
                stats.malformed += 1
            return None
        if missing:
            stats.truncated += 1
        stats.tcp += 1
        return segment
