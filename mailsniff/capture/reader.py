"""Open a capture file (pcap or pcapng, optionally gzip-compressed, or stdin) as a Frame stream."""

from __future__ import annotations

import os
import stat
import sys
import zlib
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

from mailsniff.capture.frame import Frame, FrameOrTime
from mailsniff.capture.pcap import PCAP_MAGICS, PcapSource, ReadFn, fill
from mailsniff.capture.pcapng import PCAPNG_MAGIC, PcapngSource
from mailsniff.errors import InputError, NotACaptureError, TruncatedCaptureError

if TYPE_CHECKING:
    import gzip

__all__ = ["CaptureReader", "open_capture"]

_GZIP_MAGIC = b"\x1f\x8b"
_Item = TypeVar("_Item", Frame, FrameOrTime)
#: What a broken gzip stream raises from GzipFile.read (BadGzipFile is an OSError).
_GZIP_ERRORS = (EOFError, zlib.error, OSError)


class _CountingStream:
    """A read-only stream that replays already-read bytes first and counts what it hands out."""

    __slots__ = ("_raw", "_prefix", "count")

    def __init__(self, raw: BinaryIO, prefix: bytes) -> None:
        self._raw = raw
        self._prefix = prefix
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        prefix = self._prefix
        if prefix:
            self._prefix = b""
            if size < 0:
                data = prefix + self._raw.read()
            elif size <= len(prefix):
                data, self._prefix = prefix[:size], prefix[size:]
            else:
                data = prefix + self._raw.read(size - len(prefix))
        else:
            data = self._raw.read(size)
        self.count += len(data)
        return data


class _GzipRead:
    """Reads decompressed bytes; a broken stream reads as its end, and the error is kept.

    ``read1`` returns what each decompression step yields, so every byte before the damage
    reaches the parser (a big ``read`` would lose the partial chunk to the exception).
    """

    __slots__ = ("_read1", "error")

    def __init__(self, gzip_file: gzip.GzipFile) -> None:
        self._read1 = gzip_file.read1
        self.error: BaseException | None = None

    def __call__(self, size: int, /) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self._read1(size)
        except _GZIP_ERRORS as exc:
            self.error = exc
            return b""


class CaptureReader:
    """An open capture: iterate it for Frames, in file order.

    Attributes:
        path: the path given ("-" for stdin).
        format: "pcap" or "pcapng".
        total_bytes: the file's size (None for stdin), for a progress bar.
    """

    def __init__(
        self,
        path: str,
        raw: BinaryIO,
        source: PcapSource | PcapngSource,
        *,
        total_bytes: int | None,
        gzip_file: gzip.GzipFile | None,
        gzip_read: _GzipRead | None,
        counter: _CountingStream | None,
    ) -> None:
        self.path = path
        self.format: str = source.format
        self.total_bytes = total_bytes
        self._raw = raw
        self._source = source
        self._gzip = gzip_file
        self._gzip_read = gzip_read
        self._counter = counter
        self._iter: Iterator[Frame] = self._gzip_frames(iter(source)) if gzip_file else iter(source)

    @property
    def records_read(self) -> int:
        """Frames yielded so far."""
        return self._source.records_read

    @property
    def bytes_read(self) -> int:
        """Bytes of the file read so far (compressed bytes for a gzip file)."""
        if self._counter is not None:
            return self._counter.count
        return self._source.offset

    @property
    def linktypes(self) -> list[int]:
        """pcap: the header's link type; pcapng: one per interface seen so far."""
        return self._source.linktypes

    def __iter__(self) -> Iterator[Frame]:
        return self._iter

    def routed(self, me: int, n: int) -> Iterator[FrameOrTime]:
        """Read for worker `me` of `n` of `read --jobs`: a Frame, or the capture time of a frame
        another worker owns (mailsniff.capture.route). Instead of iterating the reader."""
        items = self._source.routed(me, n)
        return self._gzip_frames(items) if self._gzip else items

    def __next__(self) -> Frame:
        return next(self._iter)

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (stdin is left open)."""
        if self._gzip is not None:
            self._gzip.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def _gzip_frames(self, items: Iterator[_Item]) -> Iterator[_Item]:
        assert self._gzip_read is not None
        try:
            yield from items
        except TruncatedCaptureError as exc:
            if self._gzip_read.error is None:
                raise
            self._gzip_truncated(self._gzip_read.error, exc)
        if self._gzip_read.error is not None:
            self._gzip_truncated(self._gzip_read.error, None)

    def _gzip_truncated(self, error: BaseException, cause: BaseException | None) -> None:
        source = self._source
        raise TruncatedCaptureError(
            f"gzip stream is cut short or corrupt ({error}) at record "
            f"{source.records_read + 1}, byte offset {source.offset} of the decompressed data",
            records_read=source.records_read,
            offset=source.offset,
        ) from cause or error


def open_capture(path: str) -> CaptureReader:
    """Open a pcap or pcapng capture, gzip-compressed or not; "-" reads standard input.

    Args:
        path: a file path, or "-" for stdin.

    Returns:
        A CaptureReader (iterate it for Frames; close it, or use it as a context manager).

    Raises:
        InputError: the file is missing, a directory, unreadable or empty.
        NotACaptureError: the bytes are not pcap or pcapng (or a gzip of them).
        TruncatedCaptureError: the file ends inside its header.
    """
    raw, total = _open_raw(path)
    try:
        return _sniff(path, raw, total)
    except BaseException:
        if raw is not sys.stdin.buffer:
            raw.close()
        raise


def _open_raw(path: str) -> tuple[BinaryIO, int | None]:
    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise InputError("cannot read standard input: it is closed")
        return sys.stdin.buffer, None
    try:
        if os.path.isdir(path):
            raise InputError(f"cannot read {path}: is a directory")
        raw = open(path, "rb")  # noqa: SIM115 - closed by CaptureReader.close
        info = os.fstat(raw.fileno())
        # A FIFO or device has no size to show progress against.
        total = info.st_size if stat.S_ISREG(info.st_mode) else None
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    return raw, total


def _sniff(path: str, raw: BinaryIO, total: int | None) -> CaptureReader:
    label = "standard input" if path == "-" else path
    head = fill(raw.read, b"", 4)
    if not head:
        raise InputError(f"cannot read {label}: it is empty")
    gzip_file: gzip.GzipFile | None = None
    gzip_read: _GzipRead | None = None
    counter: _CountingStream | None = None
    read: ReadFn = raw.read
    if head[:2] == _GZIP_MAGIC:
        import gzip  # here: only a compressed capture needs it

        counter = _CountingStream(raw, head)
        gzip_file = gzip.GzipFile(fileobj=cast(BinaryIO, counter), mode="rb")
        gzip_read = _GzipRead(gzip_file)
        read = gzip_read
        head = fill(read, b"", 4)
        if gzip_read.error is not None and len(head) < 4:
            raise NotACaptureError(f"{label}: gzip data is corrupt ({gzip_read.error})")
        if not head:
            raise InputError(f"cannot read {label}: it is empty once decompressed")
    magic = head[:4]
    source: PcapSource | PcapngSource
    if magic in PCAP_MAGICS:
        source = PcapSource(read, _whole_header(read, head, _PCAP_HEADER, "pcap", label))
    elif magic == PCAPNG_MAGIC:
        source = PcapngSource(read, _whole_header(read, head, _PCAPNG_HEADER, "pcapng", label))
    else:
        raise NotACaptureError(f"{label}: not a pcap or pcapng file (starts with {_show(head)})")
    return CaptureReader(
        path,
        raw,
        source,
        total_bytes=total,
        gzip_file=gzip_file,
        gzip_read=gzip_read,
        counter=counter,
    )


#: Bytes of the smallest whole file header: pcap's, and pcapng's Section Header Block.
_PCAP_HEADER = 24
_PCAPNG_HEADER = 28


def _whole_header(read: ReadFn, head: bytes, size: int, kind: str, label: str) -> bytes:
    """The first `size` bytes; a file too short to hold its header is not a capture (no record
    was lost, there was never one)."""
    head = fill(read, head, size)
    if len(head) < size:
        raise NotACaptureError(
            f"{label}: too short to be a {kind} capture ({len(head)} bytes, "
            f"its header alone has {size})"
        )
    return head


def _show(head: bytes) -> str:
    """Show the first bytes as text when printable, else as hex."""
    head = head[:8]
    if all(0x20 <= b < 0x7F for b in head):
        return repr(head.decode("ascii")) + " ..."
    return head.hex(" ") + " ..."
