"""Handlers for connections on implicit-TLS ports (RFC 8314): encrypted, or cleartext after all."""

from __future__ import annotations

from collections.abc import Callable

from mailsniff.model import AnomalyKind, Session, SessionAnomaly
from mailsniff.protocols.base import Direction
from mailsniff.session.base import SessionHandler

__all__ = ["OpaqueHandler", "ImplicitTlsHandler"]

#: A TLS record starts with its content type: 20-23 (RFC 8446 5.1), 22 for a handshake.
_TLS_CONTENT_TYPES = frozenset({20, 21, 22, 23})


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


class ImplicitTlsHandler:
    """A connection to 465/995/993: encrypted from the first byte -- unless the server greets in
    clear (a server that does not do TLS on that port, as in suricata-verify's smtp-errors
    capture), in which case the real protocol handler takes over and the oddity is recorded.
    """

    __slots__ = ("session", "_inner", "_decided", "_make", "_greeting")

    def __init__(
        self,
        session: Session,
        make_cleartext: Callable[[Session], SessionHandler] | None,
        greeting: Callable[[bytes], bool] = lambda data: False,
    ) -> None:
        self.session = session
        self._make = make_cleartext
        self._greeting = greeting
        self._inner: SessionHandler | None = None
        self._decided = False

    def _decide(self, direction: Direction, data: bytes) -> None:
        self._decided = True
        if self._make is None or direction is not Direction.SERVER or not data:
            return
        if data[0] in _TLS_CONTENT_TYPES:
            return
        if not self._greeting(data):
            return
        s = self.session
        s.implicit_tls = False
        s.tls = False
        detail = (
            f"cleartext {s.protocol.upper()} on implicit-TLS port {s.server.port}: "
            "the server greeted without TLS"
        )
        s.anomalies.append(SessionAnomaly(AnomalyKind.CLEARTEXT_ON_TLS_PORT, detail))
        self._inner = self._make(s)

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        if not self._decided:
            self._decide(direction, data)
        if self._inner is not None:
            self._inner.data(ts_ns, direction, data)

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        if self._inner is not None:
            self._inner.gap(ts_ns, direction, length)

    def close(self, ts_ns: int) -> None:
        if self._inner is not None:
            self._inner.close(ts_ns)
