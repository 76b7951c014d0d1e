"""Streaming reader for the libpcap file format (draft-ietf-opsawg-pcap, pcap-savefile(5))."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Final, cast

from mypy_extensions import i64

from mailsniff.capture.frame import NATIVE, Frame, FrameOrTime
from mailsniff.capture.route import elsewhere
from mailsniff.errors import TruncatedCaptureError
from mailsniff.limits import MAX_PACKET_BYTES, MAX_RECORD_BYTES

__all__ = [
    "PCAP_MAGICS",
    "PcapSource",
    "CHUNK_SIZE",
    "MAX_PACKET_BYTES",
    "MAX_RECORD_BYTES",
    "ReadFn",
    "fill",
]

#: Bytes asked of the stream per read: records are parsed out of chunks this big. 256 KiB, not
#: 1 MiB: reading the 71 MB benchmark capture took 69 ms against 84 (the allocator gave each
#: MiB buffer back to the system and every new one page-faulted in; see docs/performance.md).
CHUNK_SIZE = 1 << 18
#: libpcap's MAXIMUM_SNAPLEN: records up to this size are accepted whatever the header's snaplen.
_LIBPCAP_MAX_SNAPLEN: Final = 262144

#: First four bytes of the file (as read) -> (struct byte order, nanosecond resolution).
PCAP_MAGICS: dict[bytes, tuple[str, bool]] = {
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}

ReadFn = Callable[[int], bytes]


def refill(read: ReadFn, buf: bytes, pos: int, base: int, need: int) -> tuple[bytes, int]:
    """Keep `buf[pos:]` and read until `need` bytes are there (or the input ends): the new buffer
    and the stream offset of its first byte (`base` is that of `buf`).

    Only a record cut by the end of the last read is copied: its missing bytes are read on their
    own and joined to its start, and the read after it starts a new chunk. Joining every chunk to
    the bytes left of the one before copied the whole input a second time.
    """
    rest = buf[pos:]
    return fill(read, rest, need, exact=bool(rest)), base + pos


def fill(read: ReadFn, buf: bytes, need: int, exact: bool = False) -> bytes:
    """Return ``buf`` extended by reads until it holds at least ``need`` bytes or the input ends.

    Args:
        read: the stream's read method.
        buf: the bytes not yet consumed.
        need: how many bytes the caller wants available.
        exact: read only the bytes missing, not a chunk of CHUNK_SIZE.

    Returns:
        The extended buffer (shorter than ``need`` only at end of input); what one read
        returned, uncopied, when ``buf`` is empty.
    """
    parts = [buf] if buf else []
    have = len(buf)
    while have < need:
        chunk = read(need - have if exact else max(CHUNK_SIZE, need - have))
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)


def _u32(buf: bytes, at: i64, big: bool) -> i64:
    """The unsigned 32-bit field at `buf[at]`, big- or little-endian: a record header's fields
    in the compiled build (capture.frame.NATIVE), four byte reads on machine integers."""
    b0: i64 = buf[at]
    b1: i64 = buf[at + 1]
    b2: i64 = buf[at + 2]
    b3: i64 = buf[at + 3]
    if big:
        return (b0 << 24) | (b1 << 16) | (b2 << 8) | b3
    return b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)


class PcapSource:
    """Yields the records of a pcap file as Frames, reading the stream chunk by chunk.

    Attributes:
        linktypes: the one link type from the file header.
        records_read: records yielded so far.
        offset: bytes of the (decompressed) stream consumed so far.
    """

    format = "pcap"

    def __init__(self, read: ReadFn, head: bytes) -> None:
        """Parse the 24-byte file header.

        Args:
            read: the stream's read method, positioned after ``head``.
            head: the bytes already read from the start of the stream (at least the magic).

        Raises:
            TruncatedCaptureError: the file ends inside its header.
        """
        self._read = read
        buf = fill(read, head, 24)
        if len(buf) < 24:
            raise TruncatedCaptureError(
                f"pcap file ends inside its 24-byte header (after {len(buf)} bytes)",
                records_read=0,
                offset=len(buf),
            )
        order, self.nanosecond = PCAP_MAGICS[buf[:4]]
        self.byte_order = order
        _vmaj, _vmin, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
            order + "HHiIII", buf, 4
        )
        # The top bits of the link type field may carry FCS information (pcap-savefile(5));
        # libpcap's LT_LINKTYPE keeps the low 26.
        self.linktype = linktype & 0x03FFFFFF
        self.snaplen = snaplen
        self.linktypes = [self.linktype]
        self.records_read = 0
        self.offset = 24
        self._buf = buf[24:]

    def __iter__(self) -> Iterator[Frame]:
        return cast(Iterator[Frame], self._records(0, 0))  # n = 0: every record a Frame

    def routed(self, me: int, n: int) -> Iterator[FrameOrTime]:
        """The records for worker `me` of `n`: a Frame, or the capture time of a frame another
        worker owns (mailsniff.capture.route)."""
        return self._records(me, n)

    def _records(self, me: int, n: int) -> Iterator[FrameOrTime]:
        read = self._read
        big = self.byte_order == ">"
        unpack_from = struct.Struct(self.byte_order + "IIII").unpack_from
        frac_ns: i64 = 1 if self.nanosecond else 1000
        linktype = self.linktype
        limit = min(max(self.snaplen, _LIBPCAP_MAX_SNAPLEN), MAX_PACKET_BYTES)
        buf = self._buf
        self._buf = b""
        base = self.offset  # stream offset of buf[0]
        # Offsets in the buffer as machine integers (i64): the compiled build indexes and
        # slices the bytes without converting them.
        pos: i64 = 0
        size: i64 = len(buf)
        end: i64
        while True:
            if pos + 16 > size:
                buf, base = refill(read, buf, pos, base, 16)
                pos, size = 0, len(buf)
                if size == 0:
                    self.offset = base
                    return
                if size < 16:
                    self._truncated(f"capture ends inside a record header ({size} of 16 bytes)")
            # The time as i64: seconds (up to 2**32) times 10**9 fits, and a tagged int's
            # multiply takes the arbitrary-precision path once a factor passes 2**30.
            ts_sec: i64
            ts_frac: i64
            incl: int
            orig: int
            if NATIVE:
                ts_sec = _u32(buf, pos, big)
                ts_frac = _u32(buf, pos + 4, big)
                incl = int(_u32(buf, pos + 8, big))
                orig = int(_u32(buf, pos + 12, big))
            else:
                ts_sec, ts_frac, incl, orig = unpack_from(buf, pos)
            if incl > limit:
                self.offset = base + pos
                self._truncated(
                    f"oversize or corrupt record: captured length {incl} exceeds the limit "
                    f"{limit} (snaplen {self.snaplen}); the record was not read"
                )
            end = pos + 16 + incl
            if end > size:
                buf, base = refill(read, buf, pos, base, 16 + incl)
                end = 16 + incl
                pos, size = 0, len(buf)
                if end > size:
                    self.offset = base
                    self._truncated(
                        f"capture ends inside a record ({size - 16} of {incl} bytes present)"
                    )
            self.records_read += 1
            self.offset = base + end
            ts = ts_sec * 1_000_000_000 + ts_frac * frac_ns
            if n and elsewhere(linktype, buf, pos + 16, end, me, n):
                yield ts
            else:
                yield Frame(ts, linktype, buf[pos + 16 : end], orig)
            pos = end

    def _truncated(self, what: str) -> None:
        raise TruncatedCaptureError(
            f"{what} at record {self.records_read + 1}, byte offset {self.offset}",
            records_read=self.records_read,
            offset=self.offset,
        )
