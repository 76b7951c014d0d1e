"""Idle open sessions kept on disk while they wait for their next packet.

A capture with a hundred thousand mail connections open at once (a flood, a busy relay's tap)
would keep a session record, its protocol handler and parser in memory for each: a few KB apiece.
Past a bound the pipeline parks the sessions idle the longest here: each session with its handler
is pickled to an anonymous temporary file and memory keeps only where (a Python int per
session); the next event of the connection (data, a gap, its end) reads it back and it goes on
exactly where it stopped. The pipeline's own objects a handler refers to (the export hook) are
not written but referred to by name, and restored as the same objects.

The file only grows (a session parked again is written again); it is deleted when the store is
closed or collected.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import weakref
from typing import IO, Any

__all__ = ["ParkingLot"]

_LENGTH_BITS = 32
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
#: A session whose pickle is longer than this stays in memory (it is busy, not idle).
MAX_PARKED_BYTES = 1 << 20
_REFUSED = ("mailsniff.export", "mailsniff.sink")


#: type -> the names of its fields when it is a frozen dataclass, else None (see _rebuild).
_FROZEN: dict[type, tuple[str, ...] | None] = {}


def _frozen_fields(cls: type) -> tuple[str, ...] | None:
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        return None
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields):
        return None
    return tuple(f.name for f in fields)


def _rebuild(cls: type, names: tuple[str, ...], values: tuple[object, ...]) -> object:
    """A frozen dataclass read back through its constructor. The compiled build's frozen
    records (IMAP parser events waiting for their answer) cannot be unpickled field by field:
    its generic unpickling sets each attribute, which a frozen class refuses. (The SMTP and
    POP3 events a parser holds are not frozen and allow interpreted subclasses, which the
    compiled build unpickles field by field: see protocols/base.py.)"""
    return cls(**dict(zip(names, values, strict=True)))


class _Pickler(pickle.Pickler):
    def __init__(self, file: IO[bytes], shared: dict[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared = shared

    def persistent_id(self, obj: Any) -> str | None:  # noqa: ANN401 - pickle's own signature
        return self._shared.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:  # noqa: ANN401 - pickle's own signature
        cls = type(obj)
        # An export's sink is shared with the exporter (a copy would write nowhere): a session
        # in the middle of an exported message is not idle, it stays in memory. Checked first,
        # so that the export's frozen records are refused too, not rebuilt as copies.
        if cls.__module__.startswith(_REFUSED):
            raise pickle.PicklingError(f"{cls.__name__} is not parked")
        try:
            names = _FROZEN[cls]
        except KeyError:
            names = _FROZEN[cls] = _frozen_fields(cls)
        if names is not None:
            return _rebuild, (cls, names, tuple([getattr(obj, name) for name in names]))
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], shared: dict[str, object]) -> None:
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: Any) -> object:  # noqa: ANN401 - pickle's own signature
        return self._shared[pid]


class ParkingLot:
    """Objects written to a temporary file; each `park` gives a ticket that `unpark` redeems."""

    def __init__(self, shared: dict[str, object] | None = None) -> None:
        self._file: IO[bytes] | None = None
        self._closer: weakref.finalize[Any, Any] | None = None
        self._end = 0
        self._shared = dict(shared or {})
        self._ids = {id(obj): name for name, obj in self._shared.items() if obj is not None}
        #: Objects parked (and not yet read back), bytes written in all.
        self.parked = 0
        self.written = 0

    def park(self, obj: object) -> int | None:
        """Write `obj`; its ticket, or None when it cannot be pickled or is too big to park."""
        buf = io.BytesIO()
        try:
            _Pickler(buf, self._ids).dump(obj)
        except Exception:  # noqa: BLE001 - an unpicklable handler (a live TLS layer) stays in RAM
            return None
        data = buf.getbuffer()
        if len(data) > MAX_PARKED_BYTES:
            return None
        if self._file is None:
            import tempfile  # here: most runs never park a session

            self._file = tempfile.TemporaryFile(prefix="mailsniff-park-")
            self._closer = weakref.finalize(self, self._file.close)
        self._file.seek(self._end)
        self._file.write(data)
        ticket = self._end << _LENGTH_BITS | len(data)
        self._end += len(data)
        self.parked += 1
        self.written += len(data)
        return ticket

    def unpark(self, ticket: int) -> Any:  # noqa: ANN401 - whatever was parked
        """The object parked under `ticket`, read back."""
        assert self._file is not None
        self._file.seek(ticket >> _LENGTH_BITS)
        data = self._file.read(ticket & _LENGTH_MASK)
        self.parked -= 1
        return _Unpickler(io.BytesIO(data), self._shared).load()

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
