"""A handler for connections that are encrypted from the first byte (implicit TLS, RFC 8314)."""

from __future__ import annotations

from mailsniff.model import Session
from mailsniff.protocols.base import Direction

__all__ = ["OpaqueHandler"]


class OpaqueHandler:
    """Counts nothing itself (the pipeline records bytes and times); parses nothing."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        return None

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        return None

    def close(self, ts_ns: int) -> None:
        return None
