"""Finished sessions kept on disk for the console view, in the order it prints them.

The console report lists sessions by start time, but they finish in another order: rather than
keeping every finished `Session` until the end of the capture, each is pickled to an anonymous
temporary file as it comes, with its overview row. Memory keeps one packed sort key and two file
offsets per session (about 70 bytes), the overview's column widths and the summary's counts; the
rows and then the sessions are read back one at a time, in order.
"""

from __future__ import annotations

import pickle
import tempfile
import weakref
from array import array
from collections.abc import Iterator
from typing import IO, Any

from mailsniff.analysis.summary import Summary
from mailsniff.model import Session
from mailsniff.render.console import OverviewRow, overview_row, overview_widths

__all__ = ["SessionSpill"]

_START_BIAS = 1 << 63  # start_ns may be negative (a forged clock): keep the packed key positive
_INDEX_BITS = 32


class SessionSpill:
    """Finished sessions, stored until they are printed sorted by (start time, id)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="mailsniff-")
        # Closed (and so deleted) on every path, an exception's too, without a ResourceWarning.
        self._closer = weakref.finalize(self, self._file.close)
        self._offsets = array("Q")  # per session: its row's offset, then its session's
        self._keys: list[int] = []  # (start_ns, id, index) packed in one int
        self._sorted = False
        #: Natural width of each overview column, over every row so far.
        self.widths = overview_widths(())
        #: What the summary panel counts, over every session so far.
        self.counts = Summary()

    def __len__(self) -> int:
        return len(self._keys)

    def __enter__(self) -> SessionSpill:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._closer()

    def add(self, session: Session) -> None:
        row = overview_row(session)
        overview_widths((row,), self.widths)
        self.counts.add(session)
        f = self._file
        index = len(self._keys)
        self._offsets.append(f.tell())
        f.write(pickle.dumps(row, pickle.HIGHEST_PROTOCOL))
        self._offsets.append(f.tell())
        f.write(pickle.dumps(session, pickle.HIGHEST_PROTOCOL))
        key = (session.start_ns + _START_BIAS) << 64 | session.id
        self._keys.append(key << _INDEX_BITS | index)
        self._sorted = False

    def rows(self) -> Iterator[OverviewRow]:
        """Each session's overview row, sorted by (start time, id)."""
        for index in self._order():
            row: OverviewRow = self._load(self._offsets[2 * index])
            yield row

    def sessions(self) -> Iterator[Session]:
        """Each session, sorted by (start time, id), read back one at a time."""
        for index in self._order():
            session: Session = self._load(self._offsets[2 * index + 1])
            yield session

    def _order(self) -> Iterator[int]:
        if not self._sorted:
            self._keys.sort()
            self._sorted = True
            self._file.flush()
        mask = (1 << _INDEX_BITS) - 1
        for key in self._keys:
            yield key & mask

    def _load(self, offset: int) -> Any:
        self._file.seek(offset)
        return pickle.load(self._file)  # our own file, written above
