"""What the pipeline, live capture and the active client drive: one handler per connection."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from mypy_extensions import mypyc_attr

from mailsniff.limits import MAX_ANOMALIES, MAX_TRANSCRIPT_LINES
from mailsniff.model import AnomalyKind, Session, SessionAnomaly, TranscriptLine
from mailsniff.protocols.base import Anomaly, Direction, to_text

__all__ = [
    "AnomalyLog",
    "ParserDriven",
    "SessionHandler",
    "TranscriptRecorder",
    "restore_state",
    "saved_state",
]

E = TypeVar("E")


class SessionHandler(Protocol):
    """Folds one connection's bytes into a Session record (through a sans-IO parser).

    The caller owns the connection facts (endpoints, times, gaps list, close reason);
    the handler owns the protocol facts (banner, auth, transactions, messages, transcript).
    """

    session: Session

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        """Bytes of one direction, in stream order."""

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        """`length` bytes of `direction` were never captured; resynchronise at a line start."""

    def close(self, ts_ns: int) -> None:
        """The connection ended (FIN/RST, idle, or end of input): flush what is pending."""


class SansIoParser(Protocol[E]):
    """What a protocol parser offers: bytes and gaps in, events out (mailsniff.protocols)."""

    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[E]: ...

    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[E]: ...

    def close(self, ts_ns: int) -> list[E]: ...


def saved_state(obj: object) -> dict[str, Any]:
    """An object's attributes, for pickling (a session parked on disk, mailsniff.park): its
    `__dict__` in pure Python; compiled objects have none, their class lists the attributes."""
    names = getattr(type(obj), "__mypyc_attrs__", None)
    if names is None:
        return dict(vars(obj))
    state: dict[str, Any] = {}
    for name in names:
        try:
            state[name] = getattr(obj, name)
        except AttributeError:  # not set (yet)
            pass
    return state


def restore_state(obj: object, state: dict[str, Any]) -> None:
    """The attributes `saved_state` took, set back."""
    for name, value in state.items():
        setattr(obj, name, value)


# Handlers and their helpers are pickled when their session is parked (mailsniff.park). In the
# compiled build a class must allow interpreted subclasses for unpickling to create it without
# calling __init__ (which needs the session) while a call of the class still runs __init__;
# pure Python ignores the flag. (A protocol added from outside may subclass ParserDriven too.)
@mypyc_attr(allow_interpreted_subclasses=True)
class ParserDriven(Generic[E]):
    """A SessionHandler that feeds one sans-IO parser and folds the events it returns.

    Subclasses set `_parser` and implement `_fold`.
    """

    __slots__ = ()

    _parser: SansIoParser[E]

    def _fold(self, events: list[E]) -> None:
        raise NotImplementedError

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        """Bytes of one direction, in stream order."""
        self._fold(self._parser.feed(ts_ns, direction, data))

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        """`length` bytes of `direction` were never captured (0: capture began mid-stream)."""
        self._fold(self._parser.gap(ts_ns, direction, length))

    def close(self, ts_ns: int) -> None:
        """The connection ended: flush the parser (unanswered commands keep reply None)."""
        self._fold(self._parser.close(ts_ns))

    # For mailsniff.session.tls_layer, with parsers that emit TlsStarted (STARTTLS, STLS).

    def tls_handover(self) -> dict[Direction, bytes]:
        """Right after TLS started: the bytes each direction had past the upgrade point."""
        handover = getattr(self._parser, "tls_handover", None)
        return handover() if handover is not None else {}

    def resume_plaintext(self) -> None:
        """The bytes fed from now on are the dialogue inside TLS, decrypted."""
        resume = getattr(self._parser, "resume_plaintext", None)
        if resume is not None:
            resume()


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled: see ParserDriven
class TranscriptRecorder:
    """Appends TranscriptLine records to a session, bounded by MAX_TRANSCRIPT_LINES.

    Disabled (every call a no-op, nothing counted) when the session says not to keep one;
    builders check `enabled` before doing per-line work that only the transcript needs.
    """

    __slots__ = ("_session", "_limit", "enabled")

    def __init__(self, session: Session, limit: int = MAX_TRANSCRIPT_LINES) -> None:
        self._session = session
        self._limit = limit
        self.enabled = session.keep_transcript

    def add(self, ts_ns: int, direction: Direction, text: str, note: str | None = None) -> None:
        if not self.enabled:
            return
        s = self._session
        if len(s.transcript) >= self._limit:
            s.transcript_dropped += 1
            return
        s.transcript.append(TranscriptLine(ts_ns, direction, text, note))


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled: see ParserDriven
class AnomalyLog:
    """Appends a session's anomalies, at most MAX_ANOMALIES of them; those that did not fit are
    counted in one last record when the session closes."""

    __slots__ = ("_session", "_dropped")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._dropped = 0

    def add(self, anomaly: SessionAnomaly) -> None:
        if len(self._session.anomalies) < MAX_ANOMALIES:
            self._session.anomalies.append(anomaly)
        else:
            self._dropped += 1

    def note(self, kind: StrEnum, detail: str = "") -> None:
        """An anomaly the session builder itself notices (no parser event)."""
        self.add(SessionAnomaly(kind, detail))

    def event(self, event: Anomaly, *, with_raw: bool = True) -> None:
        """A parser's anomaly; its offending bytes (the first 200) quoted after the detail."""
        detail = event.detail
        if with_raw and event.raw:
            quoted = repr(to_text(event.raw[:200]))
            detail = f"{detail}: {quoted}" if detail else quoted
        self.add(SessionAnomaly(event.kind, detail, event.direction, ts_ns=event.ts_ns))

    def close(self) -> None:
        if self._dropped:
            detail = f"... {self._dropped} more anomalies not kept"
            self._session.anomalies.append(SessionAnomaly(AnomalyKind.NOT_KEPT, detail))
            self._dropped = 0
