"""Several capture files read as one capture (tcpdump `-C` / `-G` rotations, mergecap-style sets).

Files are ordered by the timestamp of their first record; each is opened once up front to read
that record (and closed again), then lazily when the stream reaches it. Files whose time ranges
do not overlap are read one after the other, so a connection cut by a rotation continues in the
next file exactly as if the files were one; files that do overlap (captures of two interfaces)
are merged record by record by timestamp, as mergecap does. Only the overlapping files are open
at once. Out-of-order and overlapping files are reported as warnings.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

from mailsniff.capture.frame import Frame, FrameOrTime, time_of
from mailsniff.capture.reader import CaptureReader, open_capture
from mailsniff.errors import InputError, TruncatedCaptureError

__all__ = ["MultiReader", "expand_inputs", "open_inputs"]

_GLOB_CHARS = re.compile(r"[*?[]")
_DIGITS = re.compile(r"(\d+)")
_NEVER = 1 << 127


def _natural(name: str) -> list[object]:
    """Sort key putting `cap2` before `cap10` (tcpdump -C numbers its files without padding)."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def expand_inputs(args: list[str]) -> list[str]:
    """The capture files named by `args`: files, directories (their regular, non-hidden files)
    and glob patterns (for patterns the shell did not expand), in natural name order within a
    directory or pattern. "-" (standard input) is only allowed alone.

    Raises:
        InputError: a pattern that matches nothing, an empty directory, or "-" among others.
    """
    if "-" in args and len(args) > 1:
        raise InputError("standard input (-) cannot be read together with other captures")
    paths: list[str] = []
    for arg in args:
        if arg == "-" or os.path.exists(arg) and not os.path.isdir(arg):
            paths.append(arg)
        elif os.path.isdir(arg):
            try:
                names = sorted((n for n in os.listdir(arg) if not n.startswith(".")), key=_natural)
            except OSError as exc:
                raise InputError(f"cannot read {arg}: {exc.strerror or exc}") from None
            found = [os.path.join(arg, n) for n in names if os.path.isfile(os.path.join(arg, n))]
            if not found:
                raise InputError(f"cannot read {arg}: the directory holds no files")
            paths.extend(found)
        elif _GLOB_CHARS.search(arg):
            import glob  # here: only for a pattern the shell left unexpanded

            matched = sorted((p for p in glob.glob(arg) if os.path.isfile(p)), key=_natural)
            if not matched:
                raise InputError(f"cannot read {arg}: no file matches this pattern")
            paths.extend(matched)
        else:
            paths.append(arg)  # missing: open_capture says so
    seen: set[str] = set()
    unique = []
    for path in paths:
        key = os.path.realpath(path) if path != "-" else path
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


@dataclass(slots=True)
class _Input:
    """One file of a set: what opening it told, and its reader once it is read."""

    path: str
    order: int  # position in the list given
    size: int
    first_ns: int | None  # None: the file holds no record
    format: str
    linktypes: list[int]
    last_ns: int | None = None
    reader: CaptureReader | None = None
    frames: Iterator[FrameOrTime] | None = None
    done: bool = False


@dataclass(slots=True)
class MultiReader:
    """Iterate for Frames of every file, in time order (see the module docstring).

    Has the attributes `reading` uses of a CaptureReader: format, total_bytes, bytes_read,
    linktypes, records_read; plus `warnings` (overlaps, order, truncated files) and
    `truncated` (a file ended inside a record: the rest of the set was still read).
    """

    inputs: list[_Input]
    warnings: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    records_read: int = 0
    _done_bytes: int = 0
    _open: list[_Input] = field(default_factory=list)

    @classmethod
    def open(cls, paths: list[str]) -> MultiReader:
        """Check every file (opening one at a time, reading only its first record).

        Raises:
            MailsniffError: a file is missing, unreadable or not a capture (before any output).
        """
        inputs: list[_Input] = []
        for order, path in enumerate(paths):
            with open_capture(path) as reader:
                try:
                    first = next(iter(reader), None)
                except TruncatedCaptureError:
                    first = None
                inputs.append(
                    _Input(
                        path=path,
                        order=order,
                        size=reader.total_bytes or 0,
                        first_ns=first.ts_ns if first is not None else None,
                        format=reader.format,
                        linktypes=list(reader.linktypes),
                    )
                )
        multi = cls(inputs=sorted(inputs, key=_start_key))
        moved = [i for i, inp in enumerate(multi.inputs) if inp.order != i]
        if moved:
            names = ", ".join(multi.inputs[i].path for i in moved[:3])
            more = f" and {len(moved) - 3} more" if len(moved) > 3 else ""
            multi.warnings.append(
                f"{len(moved)} capture files were not in time order ({names}{more}): "
                "they are read in order of their first packet"
            )
        empty = [inp.path for inp in inputs if inp.first_ns is None]
        if empty:
            multi.warnings.append(
                f"{len(empty)} capture file(s) hold no packet: " + ", ".join(empty[:3])
            )
        return multi

    # -- what reading uses of a reader --------------------------------------------------------

    @property
    def format(self) -> str:
        formats = {inp.format for inp in self.inputs}
        return formats.pop() if len(formats) == 1 else "mixed"

    @property
    def total_bytes(self) -> int:
        return sum(inp.size for inp in self.inputs)

    @property
    def bytes_read(self) -> int:
        return self._done_bytes + sum(
            inp.reader.bytes_read for inp in self._open if inp.reader is not None
        )

    @property
    def linktypes(self) -> list[int]:
        seen: list[int] = []
        for inp in self.inputs:
            types = inp.reader.linktypes if inp.reader is not None else inp.linktypes
            seen.extend(t for t in types if t not in seen)
        return seen

    def close(self) -> None:
        for inp in self._open:
            if inp.reader is not None:
                inp.reader.close()
        self._open.clear()

    def __enter__(self) -> MultiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the merged stream ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[Frame]:
        return cast(Iterator[Frame], self._merged(0, 0))  # n = 0: every record a Frame

    def routed(self, me: int, n: int) -> Iterator[FrameOrTime]:
        """Read for worker `me` of `n` of `read --jobs`: a Frame, or the capture time of a frame
        another worker owns (mailsniff.capture.route). Instead of iterating the reader."""
        return self._merged(me, n)

    def _merged(self, me: int, n: int) -> Iterator[FrameOrTime]:
        pending = [inp for inp in self.inputs if inp.first_ns is not None]
        pending.reverse()  # pop() takes the earliest
        heap: list[tuple[int, int, int, FrameOrTime]] = []
        seq = 0
        last_closed: _Input | None = None
        try:
            while heap or pending:
                # Open the next file once the stream reaches its first packet (at once when
                # nothing else is open): files that overlap in time are merged.
                while pending and (not heap or _first(pending[-1]) < heap[0][0]):
                    inp = pending.pop()
                    if heap:
                        self._overlap(inp, [self._by_rank(h[1]) for h in heap])
                    elif last_closed is not None and last_closed.last_ns is not None:
                        if _first(inp) < last_closed.last_ns:
                            self._overlap(inp, [last_closed])
                    frame = self._start(inp, me, n)
                    if frame is not None:
                        heapq.heappush(heap, (time_of(frame), self.inputs.index(inp), seq, frame))
                        seq += 1
                ts, rank, _, frame = heapq.heappop(heap)
                inp = self.inputs[rank]
                self.records_read += 1
                if inp.last_ns is None or ts > inp.last_ns:
                    inp.last_ns = ts
                yield frame
                following = None
                if not heap:  # the only file open: read it straight up to the next one's start
                    following, last = yield from self._straight(inp, pending)
                    if last is not None and (inp.last_ns is None or last > inp.last_ns):
                        inp.last_ns = last
                if following is None and not inp.done:
                    following = self._next(inp)
                if following is not None:
                    heapq.heappush(heap, (time_of(following), rank, seq, following))
                    seq += 1
                else:
                    last_closed = inp
        finally:
            self.close()

    def _straight(
        self, inp: _Input, pending: list[_Input]
    ) -> Generator[FrameOrTime, None, tuple[FrameOrTime | None, int | None]]:
        """Yield the frames of `inp` up to the first packet of the next file; return the frame
        after them (None: the file ended) and the latest timestamp yielded."""
        assert inp.frames is not None
        bound = _first(pending[-1]) if pending else _NEVER
        last: int | None = None
        count = 0
        error: TruncatedCaptureError | None = None
        try:
            for frame in inp.frames:
                ts = time_of(frame)
                if ts > bound:
                    self.records_read += count
                    return frame, last
                if last is None or ts > last:
                    last = ts
                count += 1
                yield frame
        except TruncatedCaptureError as exc:
            error = exc
        self.records_read += count
        self._end(inp, error)
        return None, last

    def _by_rank(self, rank: int) -> _Input:
        return self.inputs[rank]

    def _start(self, inp: _Input, me: int, n: int) -> FrameOrTime | None:
        inp.reader = open_capture(inp.path)
        inp.frames = inp.reader.routed(me, n)
        self._open.append(inp)
        return self._next(inp)

    def _next(self, inp: _Input) -> FrameOrTime | None:
        assert inp.frames is not None and inp.reader is not None
        try:
            return next(inp.frames)
        except StopIteration:
            self._end(inp, None)
        except TruncatedCaptureError as error:
            self._end(inp, error)
        return None

    def _end(self, inp: _Input, error: TruncatedCaptureError | None) -> None:
        """`inp` is read to its end (or to the damage that cut it short): close it."""
        assert inp.reader is not None
        if error is not None:
            self.truncated.append(f"{inp.path}: {error.message}")
            self.warnings.append(
                f"{inp.path} is cut short ({error.message}); {error.records_read} records "
                "read from it, the following files were still read"
            )
        self._done_bytes += inp.size
        inp.reader.close()
        inp.reader = None
        inp.frames = None
        inp.done = True
        self._open.remove(inp)

    def _overlap(self, inp: _Input, others: list[_Input]) -> None:
        names = ", ".join(o.path for o in others)
        assert inp.first_ns is not None
        self.warnings.append(
            f"{inp.path} overlaps {names} in time (its first packet, "
            f"{_when(inp.first_ns)}, is earlier than their last): "
            "their packets are merged by timestamp"
        )


def _when(ts_ns: int) -> str:
    """A packet time for a warning (UTC, microseconds); @SECONDS outside years 1-9999."""
    try:
        moment = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"@{ts_ns / 1e9:.6f}"
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _first(inp: _Input) -> int:
    assert inp.first_ns is not None
    return inp.first_ns


def _start_key(inp: _Input) -> tuple[int, int, int]:
    if inp.first_ns is None:
        return (1, 0, inp.order)
    return (0, inp.first_ns, inp.order)


def open_inputs(paths: list[str]) -> CaptureReader | MultiReader:
    """One capture file as it always was (stdin included), several as one MultiReader."""
    if len(paths) == 1:
        return open_capture(paths[0])
    return MultiReader.open(paths)
