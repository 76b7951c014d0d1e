"""Streaming reader for the pcapng file format (draft-ietf-opsawg-pcapng)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final, cast

from mypy_extensions import i64

from mailsniff.capture.frame import Frame, FrameOrTime
from mailsniff.capture.pcap import MAX_PACKET_BYTES, MAX_RECORD_BYTES, ReadFn, refill
from mailsniff.capture.route import elsewhere
from mailsniff.errors import TruncatedCaptureError

__all__ = ["PCAPNG_MAGIC", "PcapngSource", "Interface"]

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# Final: the compiled build reads them as C constants (a module-dict lookup each use else, and
# the block loop used several for every packet).
_SHB: Final = 0x0A0D0D0A
_IDB: Final = 0x00000001
_PB: Final = 0x00000002  # obsolete Packet Block
_SPB: Final = 0x00000003
_EPB: Final = 0x00000006
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_PACKET_BLOCKS: Final = frozenset({_EPB, _PB, _SPB})
#: A packet block: the packet, its 32 bytes of framing, and room for options.
_MAX_PACKET_BLOCK: Final = MAX_PACKET_BYTES + 64 * 1024
_MAX_BLOCK: Final = MAX_RECORD_BYTES

_OPT_END: Final = 0
_OPT_IF_TSRESOL: Final = 9
_OPT_IF_TSOFFSET: Final = 14


class Interface:
    """What an Interface Description Block says about the packets captured on it."""

    __slots__ = ("linktype", "snaplen", "ts_mul", "ts_shift", "ts_div", "ts_offset_ns", "fast_max")

    def __init__(self, linktype: int, snaplen: int, tsresol: int, tsoffset_s: int) -> None:
        """Precompute the timestamp conversion: ns = (ts * ts_mul >> ts_shift) // ts_div + off.

        Args:
            linktype: LINKTYPE_ value.
            snaplen: the interface's snaplen (0 = unlimited).
            tsresol: the if_tsresol option byte (default 6: microseconds).
            tsoffset_s: the if_tsoffset option, seconds added to every timestamp.
        """
        self.linktype = linktype
        self.snaplen = snaplen
        self.ts_offset_ns = tsoffset_s * 1_000_000_000
        exponent = tsresol & 0x7F
        if tsresol & 0x80:  # units of 2**-exponent seconds
            self.ts_mul, self.ts_shift, self.ts_div = 1_000_000_000, exponent, 1
        elif exponent <= 9:  # units of 10**-exponent seconds
            self.ts_mul, self.ts_shift, self.ts_div = 10 ** (9 - exponent), 0, 1
        else:
            self.ts_mul, self.ts_shift, self.ts_div = 1, 0, 10 ** (exponent - 9)
        # Timestamps up to this are converted on machine integers (the product stays under
        # 2**62, the shift and the divisor fit in 64 bits): the compiled build multiplied a
        # microsecond timestamp (about 2**51) as arbitrary-precision integers, a microsecond a
        # packet. Larger ones (and odd resolutions) take Python's integers: the same result.
        fits = self.ts_shift < 62 and self.ts_div < 1 << 62
        self.fast_max = (1 << 62) // self.ts_mul if fits else -1

    def ts_ns(self, ts: int) -> int:
        """Convert a raw 64-bit block timestamp to nanoseconds since the epoch."""
        if 0 <= ts <= self.fast_max:
            raw: i64 = ts
            mul: i64 = self.ts_mul
            shift: i64 = self.ts_shift
            div: i64 = self.ts_div
            return int(((raw * mul) >> shift) // div) + self.ts_offset_ns
        return ((ts * self.ts_mul) >> self.ts_shift) // self.ts_div + self.ts_offset_ns


class PcapngSource:
    """Yields the packets of a pcapng file as Frames, block by block.

    Attributes:
        linktypes: one link type per interface seen so far (across all sections).
        records_read: packets yielded so far.
        offset: bytes of the (decompressed) stream consumed so far.
    """

    format = "pcapng"

    def __init__(self, read: ReadFn, head: bytes) -> None:
        """Prepare to read from the start of the stream.

        Args:
            read: the stream's read method, positioned after ``head``.
            head: the bytes already read from the start of the stream (at least the magic).
        """
        self._read = read
        self._buf = head
        self.linktypes: list[int] = []
        self.records_read = 0
        self.blocks_read = 0
        self.offset = 0
        self._interfaces: list[Interface] = []

    def __iter__(self) -> Iterator[Frame]:
        return cast(Iterator[Frame], self._blocks(0, 0))  # n = 0: every packet a Frame

    def routed(self, me: int, n: int) -> Iterator[FrameOrTime]:
        """The packets for worker `me` of `n`: a Frame, or the capture time of a frame another
        worker owns (mailsniff.capture.route)."""
        return self._blocks(me, n)

    def _blocks(self, me: int, n: int) -> Iterator[FrameOrTime]:
        read = self._read
        buf = self._buf
        self._buf = b""
        base = 0
        pos = 0
        size = len(buf)
        order = "<"
        head = struct.Struct("<II").unpack_from
        u32 = struct.Struct("<I").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        while True:
            if pos + 12 > size:
                buf, base = refill(read, buf, pos, base, 12)
                pos, size = 0, len(buf)
                if size == 0:
                    self.offset = base
                    return
                if size < 12:
                    self._corrupt(f"capture ends inside a block header ({size} of 12 bytes)")
            # Declared: the compiled build unboxes each field once (struct's are untyped, and
            # every test and sum on an untyped value was a generic call).
            btype: int
            blen: int
            trailer: int
            ifid: int
            ts_hi: int
            ts_lo: int
            caplen: int
            origlen: int
            btype, blen = head(buf, pos)
            if btype == _SHB:
                magic = buf[pos + 8 : pos + 12]
                if magic == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif magic == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self._corrupt(f"section header has a bad byte-order magic {magic.hex()}")
                head = struct.Struct(order + "II").unpack_from
                u32 = struct.Struct(order + "I").unpack_from
                epb = struct.Struct(order + "IIIII").unpack_from
                btype, blen = head(buf, pos)
                if blen < 28:
                    self._corrupt(f"corrupt section header block: length {blen} < 28")
                self._interfaces = []
            if blen < 12 or blen % 4:
                self._corrupt(f"corrupt block: type {btype:#x} has a bad length {blen}")
            limit = _MAX_PACKET_BLOCK if btype in _PACKET_BLOCKS else _MAX_BLOCK
            if blen > limit:
                self._corrupt(
                    f"oversize or corrupt block: type {btype:#x} has length {blen}, over the "
                    f"limit {limit}; the block was not read"
                )
            end = pos + blen
            if end > size:
                buf, base = refill(read, buf, pos, base, blen)
                end = blen
                pos, size = 0, len(buf)
                if end > size:
                    self._corrupt(f"capture ends inside a block ({size} of {blen} bytes present)")
            (trailer,) = u32(buf, end - 4)
            if trailer != blen:
                self._corrupt(
                    f"corrupt block: type {btype:#x} trailer length {trailer} differs from {blen}"
                )
            self.blocks_read += 1
            if btype == _EPB or btype == _PB:
                # The obsolete Packet Block has the Enhanced one's layout but for a 16-bit
                # interface id and a drops counter (draft-ietf-opsawg-pcapng, appendix A).
                name = "enhanced packet block" if btype == _EPB else "packet block"
                if blen < 32:
                    self._corrupt(f"corrupt {name}: length {blen} < 32")
                if btype == _EPB:
                    ifid, ts_hi, ts_lo, caplen, origlen = epb(buf, pos + 8)
                else:
                    ifid, _drops, ts_hi, ts_lo, caplen, origlen = struct.unpack_from(
                        order + "HHIIII", buf, pos + 8
                    )
                if caplen > blen - 32:
                    self._corrupt(
                        f"corrupt {name}: captured length {caplen} exceeds the block ({blen} bytes)"
                    )
                iface = self._interface(ifid)
                self.records_read += 1
                self.offset = base + end
                ts = iface.ts_ns((ts_hi << 32) | ts_lo)
                start, stop = pos + 28, pos + 28 + caplen
                if n and elsewhere(iface.linktype, buf, start, stop, me, n):
                    yield ts
                else:
                    yield Frame(ts, iface.linktype, buf[start:stop], origlen)
            elif btype == _SPB:
                if blen < 16:
                    self._corrupt(f"corrupt simple packet block: length {blen} < 16")
                iface = self._interface(0)
                origlen = u32(buf, pos + 8)[0]
                caplen = min(origlen, blen - 16)
                if iface.snaplen:
                    caplen = min(caplen, iface.snaplen)
                self.records_read += 1
                self.offset = base + end
                # A Simple Packet Block has no timestamp (draft-ietf-opsawg-pcapng 4.4).
                yield Frame(0, iface.linktype, buf[pos + 12 : pos + 12 + caplen], origlen)
            elif btype == _IDB:
                self._add_interface(buf, pos, blen, order)
            # Every other block (NRB, ISB, DSB, custom, unknown) carries no packet: skipped.
            pos = end
            self.offset = base + pos

    def _interface(self, ifid: int) -> Interface:
        if ifid < len(self._interfaces):
            return self._interfaces[ifid]
        self._corrupt(
            f"packet refers to interface {ifid} but the section defines "
            f"{len(self._interfaces)} interface(s)"
        )
        raise AssertionError("unreachable")  # pragma: no cover

    def _add_interface(self, buf: bytes, pos: int, blen: int, order: str) -> None:
        if blen < 20:
            self._corrupt(f"corrupt interface description block: length {blen} < 20")
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
        tsresol = 6
        tsoffset = 0
        opt = pos + 16
        opt_end = pos + blen - 4
        while opt + 4 <= opt_end:
            code, length = struct.unpack_from(order + "HH", buf, opt)
            value = opt + 4
            if code == _OPT_END or value + length > opt_end:
                break
            if code == _OPT_IF_TSRESOL and length >= 1:
                tsresol = buf[value]
            elif code == _OPT_IF_TSOFFSET and length >= 8:
                (tsoffset,) = struct.unpack_from(order + "q", buf, value)
            opt = value + ((length + 3) & ~3)
        self._interfaces.append(Interface(linktype, snaplen, tsresol, tsoffset))
        self.linktypes.append(linktype)

    def _corrupt(self, what: str) -> None:
        raise TruncatedCaptureError(
            f"{what} at record {self.records_read + 1}, byte offset {self.offset}",
            records_read=self.records_read,
            offset=self.offset,
        )
