"""Capture decoupled from analysis: a process that only moves ring blocks into a spool on disk.

The capture process (forked once the socket, its filter and its TPACKET_V3 ring are set up, so
every error is raised before it starts) waits for the kernel to hand over a block of the ring,
appends the block as it is to the spool and gives the block back: one copy and one write per
block of hundreds of packets, nothing per packet, and nothing that waits for analysis. Analysis
(this process with `--jobs 1`, each worker with more) reads the spool at its own pace and takes
the packets out of the blocks (`capture.ring.block_frames`).

When analysis falls behind, the spool grows (in the page cache first, then on disk) instead of
the ring overflowing; analysis catches up afterwards. The spool is bounded (`--spill-size`):
past the bound, whole blocks are left out and their packets counted as dropped by mailsniff,
never silently. Files analysis has read are deleted as it goes (files of 32 MiB), and the spool
directory is removed at the end.

Spool records: a little-endian (u32 length, u32 packets) header, then `length` bytes of block.
A length of NEXT_FILE moves the reader to the next file, END ends the capture.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import select
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mailsniff.capture.frame import Frame
from mailsniff.capture.ring import BLOCK_DESC, RETIRE_MS, TP_STATUS_USER, block_frames
from mailsniff.capture.sniff import CaptureSocket
from mailsniff.capture.writer import PcapWriter
from mailsniff.errors import UsageError

__all__ = [
    "DEFAULT_SPILL",
    "CaptureProcess",
    "ProcessCapture",
    "SpoolReader",
    "parse_spill_size",
]

#: --spill-size default: backlog of captured blocks kept for analysis to catch up with.
DEFAULT_SPILL = 2 * 1024**3
MIN_SPILL = 16 * 1024**2
#: Bytes per spool file (a file is deleted once every reader is past it).
FILE_BYTES = 32 * 1024**2
_HEADER = struct.Struct("<II")
NEXT_FILE = 0xFFFFFFFE
END = 0xFFFFFFFF
_STATUS = struct.Struct("=I")
_ZERO = b"\0\0\0\0"
#: Seconds a reader sleeps when it has read everything written so far.
_POLL_S = 0.005

# Shared counters (one array of int64, written by one side each).
_STOP = 0  # parent -> capture: stop now
_DONE = 1  # capture -> all: the END record is written
_ERRNO = 2  # capture: the error that ended it (0: none)
_BLOCKS = 3
_WRITTEN = 4  # bytes appended to the spool
_KERNEL_SEEN = 5
_KERNEL_DROPPED = 6
_DROPPED = 7  # packets left out: spool full or not writable
_PEAK = 8  # largest backlog (bytes written, not yet read by the slowest reader)
_CPU_US = 9  # the capture process's own CPU time (user + system), at its end
_READERS = 16  # then per reader: bytes read, file number


def parse_spill_size(text: str) -> int:
    """`--spill-size` in bytes: a bare number is MiB, or a size like 512M, 4G."""
    match = re.match(r"(?i)^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", text)
    if match is None:
        raise UsageError(f"--spill-size: not a size: {text!r} (MiB, or e.g. 512M, 4G)")
    number, unit = int(match.group(1)), match.group(2).lower() or "m"
    size = number * {"k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    if size < MIN_SPILL:
        raise UsageError(f"--spill-size: {text} is less than the least spill, 16 MiB")
    return size


def _file(directory: str, number: int) -> str:
    return os.path.join(directory, f"spool-{number:08d}")


class CaptureProcess:
    """The capture process of one CaptureSocket (with a ring), its spool and its counters."""

    def __init__(self, source: CaptureSocket, spill: int = DEFAULT_SPILL, readers: int = 1) -> None:
        assert source.ring is not None
        self.source = source
        self.spill = spill
        self.readers = readers
        self.directory = tempfile.mkdtemp(prefix="mailsniff-spool-")
        ctx: Any = multiprocessing.get_context("fork")
        self.counters: Any = ctx.RawArray("q", _READERS + 2 * readers)
        self._claimed: Any = ctx.Value("i", 0)
        self._process: Any = ctx.Process(
            target=_capture_main,
            args=(source, self.directory, self.counters, spill, readers, os.getpid()),
            name="mailsniff-capture",
            daemon=True,
        )

    def start(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._process.start()

    def alive(self) -> bool:
        return bool(self._process.is_alive())

    def stop(self) -> None:
        """Ask the capture to end (it takes what the ring holds first) and wait for it."""
        self.counters[_STOP] = 1
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self.counters[_DONE] = 1  # (if it was killed: readers end at the last whole block)

    def close(self) -> None:
        if self._process.pid is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join()
        shutil.rmtree(self.directory, ignore_errors=True)

    def request_stop(self) -> None:
        """Ask the capture to end, without waiting (stop() waits)."""
        self.counters[_STOP] = 1

    def claim_reader(self, count: int | None = None) -> SpoolReader:
        """The next of the `readers` readers (in whichever process calls this first)."""
        with self._claimed.get_lock():
            index = self._claimed.value
            self._claimed.value += 1
        assert index < self.readers
        return self.reader(index, count=count)

    def reader(
        self, index: int = 0, alive: Callable[[], bool] | None = None, count: int | None = None
    ) -> SpoolReader:
        return SpoolReader(
            directory=self.directory,
            counters=self.counters,
            index=index,
            count=count,
            linktype=self.source.linktype,
            cooked=self.source.cooked,
            skip_outgoing=self.source.skip_outgoing,
            alive=alive,
        )

    @property
    def error(self) -> OSError | None:
        errno = int(self.counters[_ERRNO])
        return OSError(errno, os.strerror(errno)) if errno else None

    @property
    def kernel_dropped(self) -> int:
        return int(self.counters[_KERNEL_DROPPED])

    @property
    def dropped(self) -> int:
        return int(self.counters[_DROPPED])

    @property
    def peak_backlog(self) -> int:
        return int(self.counters[_PEAK])

    @property
    def cpu_seconds(self) -> float:
        """The capture process's CPU time (once it ended)."""
        return int(self.counters[_CPU_US]) / 1e6

    @property
    def written(self) -> int:
        return int(self.counters[_WRITTEN])

    def backlog(self) -> int:
        c = self.counters
        return int(c[_WRITTEN]) - min(int(c[_READERS + 2 * k]) for k in range(self.readers))


def _capture_main(
    source: CaptureSocket, directory: str, counters: Any, spill: int, readers: int, parent: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)  # ahead of analysis when root
    try:
        _move_blocks(source, directory, counters, spill, readers, parent)
    except OSError as error:
        counters[_ERRNO] = error.errno or 5
    finally:
        counters[_CPU_US] = int(sum(os.times()[:2]) * 1e6)
        counters[_DONE] = 1


def _move_blocks(
    source: CaptureSocket, directory: str, counters: Any, spill: int, readers: int, parent: int
) -> None:
    ring = source.ring
    assert ring is not None
    mm, size, blocks = ring.mm, ring.block_size, ring.blocks
    status_of = _STATUS.unpack_from
    desc = BLOCK_DESC.unpack_from
    poller = select.poll()
    poller.register(source.sock.fileno(), select.POLLIN | select.POLLERR)
    number = 0
    fd = os.open(_file(directory, number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    in_file = 0
    written = 0
    peak = 0
    deleted = 0
    index = 0
    full = False
    stop_at: float | None = None
    next_stats = time.monotonic() + 0.25
    read_at = [_READERS + 2 * k for k in range(readers)]
    file_at = [_READERS + 2 * k + 1 for k in range(readers)]

    def kernel_stats() -> None:
        seen, dropped = source.kernel_stats()
        counters[_KERNEL_SEEN] += seen
        counters[_KERNEL_DROPPED] += dropped

    try:
        while True:
            now = time.monotonic()
            if counters[_STOP]:
                if stop_at is None:
                    # Blocks partly filled before the stop are handed over within RETIRE_MS.
                    stop_at = now + 3 * RETIRE_MS / 1000
                elif now >= stop_at:
                    break
            if now >= next_stats:
                next_stats = now + 0.25
                if os.getppid() != parent:  # mailsniff was killed: nobody will read this
                    shutil.rmtree(directory, ignore_errors=True)
                    return
                kernel_stats()
                if full and written - min(counters[i] for i in read_at) < spill // 2:
                    full = False  # room again: try the disk again
            offset = index * size
            if not status_of(mm, offset + 8)[0] & TP_STATUS_USER:
                poller.poll(RETIRE_MS)
                continue
            _, _, _, packets, _, length = desc(mm, offset)
            block = mm[offset : offset + length]
            mm[offset + 8 : offset + 12] = _ZERO  # back to the kernel
            index = index + 1 if index + 1 < blocks else 0
            backlog = written - min(counters[i] for i in read_at)
            if full or backlog + length + _HEADER.size > spill:
                counters[_DROPPED] += packets
                continue
            try:
                done = os.writev(fd, (_HEADER.pack(length, packets), block))
            except OSError:
                done = -1
            if done != _HEADER.size + length:  # the disk is full: counted, as a full spool
                with contextlib.suppress(OSError):  # no half record for the readers
                    os.ftruncate(fd, in_file)
                    os.lseek(fd, in_file, os.SEEK_SET)
                counters[_DROPPED] += packets
                full = True
                continue
            written += _HEADER.size + length
            in_file += _HEADER.size + length
            counters[_BLOCKS] += 1
            counters[_WRITTEN] = written
            if backlog + _HEADER.size + length > peak:
                peak = backlog + _HEADER.size + length
                counters[_PEAK] = peak
            if in_file >= FILE_BYTES:
                os.write(fd, _HEADER.pack(NEXT_FILE, 0))
                os.close(fd)
                number += 1
                fd = os.open(_file(directory, number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                in_file = 0
                oldest = min(counters[i] for i in file_at)
                while deleted < oldest:
                    with contextlib.suppress(OSError):
                        os.unlink(_file(directory, deleted))
                    deleted += 1
    finally:
        kernel_stats()
        with contextlib.suppress(OSError):
            os.write(fd, _HEADER.pack(END, 0))
        os.close(fd)


@dataclass(slots=True)
class SpoolReader:
    """Frames from a spool, in capture order, as its capture process writes it."""

    directory: str
    counters: Any
    index: int
    linktype: int
    cooked: bool
    skip_outgoing: bool
    #: False once the capture process is gone (it may have died without its END record).
    alive: Callable[[], bool] | None = None
    #: End after this many frames (-c).
    count: int | None = None
    ended: bool = False
    bytes_read: int = 0
    delivered: int = 0
    _number: int = 0
    _file: Any = None
    _pending: deque[Frame] = field(default_factory=deque)

    def __enter__(self) -> SpoolReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def get_batch(self, limit: int, timeout: float) -> list[Frame]:
        """Up to `limit` frames, oldest first; waits up to `timeout` seconds for the first."""
        if self.count is not None:
            limit = min(limit, self.count - self.delivered)
            if limit <= 0:
                self.ended = True
                return []
        pending = self._pending
        if not pending and not self.ended:
            deadline = time.monotonic() + timeout
            while not self._next_block():
                if self.ended or time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_S)
        out: list[Frame] = []
        while pending and len(out) < limit:
            out.append(pending.popleft())
            if not pending and len(out) < limit and not self._next_block():
                break
        self.delivered += len(out)
        if self.count is not None and self.delivered >= self.count:
            self.ended = True
        return out

    def frames_or_idle(self, idle: float = 0.25) -> Iterator[Frame | None]:
        """Every frame, and None after each `idle` seconds with nothing new (for --jobs)."""
        while True:
            batch = self.get_batch(4096, idle)
            yield from batch
            if self.ended:
                return
            if not batch:
                yield None

    def _next_block(self) -> bool:
        """Read the next block record into the pending frames; False when none is complete."""
        while True:
            # Looked at before reading: the capture process sets DONE after its END record,
            # so a capture that was done before a read that found nothing has nothing more.
            gone = bool(self.counters[_DONE]) or (self.alive is not None and not self.alive())
            if self._file is None:
                try:
                    self._file = open(_file(self.directory, self._number), "rb", buffering=0)  # noqa: SIM115
                except FileNotFoundError:
                    self.ended = gone
                    return False
            f = self._file
            start = f.tell()
            header = f.read(_HEADER.size)
            length = _HEADER.unpack(header)[0] if len(header) == _HEADER.size else None
            if length == END:
                self.ended = True
                return False
            if length == NEXT_FILE:
                f.close()
                self._file = None
                self._number += 1
                self.counters[_READERS + 2 * self.index + 1] = self._number
                continue
            block = f.read(length) if length is not None else b""
            if length is None or len(block) < length:
                f.seek(start)
                self.ended = gone
                return False
            self.bytes_read += _HEADER.size + length
            self.counters[_READERS + 2 * self.index] = self.bytes_read
            self._pending.extend(
                block_frames(block, self.linktype, self.cooked, self.skip_outgoing)
            )
            if self._pending:
                return True


class _Queue:
    """The hand-over live analysis reads from (FrameQueue's interface, over the spool)."""

    def __init__(self, capture: ProcessCapture) -> None:
        self._capture = capture

    @property
    def dropped(self) -> int:
        return self._capture.process.dropped

    def get_batch(self, limit: int, timeout: float) -> list[Frame]:
        return self._capture.take(limit, timeout)

    def wake(self) -> None:
        pass


@dataclass(slots=True)
class ProcessCapture:
    """LiveCapture's interface over a capture process: frames come through a spool.

    `captured` counts the frames handed to analysis (and to `writer`, the -w pcap); `count`
    ends the capture after that many.
    """

    source: CaptureSocket
    writer: PcapWriter | None = None
    count: int | None = None
    spill: int = DEFAULT_SPILL
    #: Analysis processes reading the spool (--jobs); with one, this process reads it.
    readers: int = 1
    captured: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    process: CaptureProcess = field(init=False)
    reader: SpoolReader | None = field(init=False)
    queue: _Queue = field(init=False)

    def __post_init__(self) -> None:
        self.process = CaptureProcess(self.source, self.spill, self.readers)
        # With more readers, worker processes claim them (mailsniff.commands.live_jobs).
        self.reader = (
            self.process.reader(0, alive=self.process.alive, count=self.count)
            if self.readers == 1
            else None
        )
        self.queue = _Queue(self)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()
        self.update_kernel_stats()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.process.close()

    def update_kernel_stats(self) -> None:
        """Kept by the capture process; nothing to do here."""

    @property
    def error(self) -> OSError | None:
        return self.process.error

    @property
    def kernel_dropped(self) -> int:
        return self.process.kernel_dropped

    def take(self, limit: int, timeout: float) -> list[Frame]:
        if self.reader is None:
            self.done.set()
            return []
        frames = self.reader.get_batch(limit, timeout)
        self.captured += len(frames)
        if self.writer is not None:
            for frame in frames:
                self.writer.write(frame)
        if self.reader.ended:
            self.done.set()
        return frames
