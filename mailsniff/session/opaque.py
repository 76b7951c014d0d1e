"""The handler of a connection whose protocol has no parser: bytes, times and gaps only."""

from __future__ import annotations

from mailsniff.model import Session
from mailsniff.protocols.base import Direction

__all__ = ["OpaqueHandler"]


class OpaqueHandler:
    """Parses nothing (the pipeline records bytes, times and gaps)."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        return None

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        return None

    def close(self, ts_ns: int) -> None:
        return None
