"""Shared pieces of the sans-IO protocol parsers: direction, a bounded line buffer, text decoding.

Nothing here (or anywhere in `mailsniff.protocols`) does I/O: parsers are fed
`(ts_ns, direction, bytes)` and hand back typed events, like h11.

The events made for every line or segment (`Line`, `SaslStep`, and in `smtp` and `pop3` the
commands, replies and message data) write their `__init__` out (`init=False`: `@dataclass` then
writes none at import): the compiled build compiles it, where a dataclass's generated `__init__`
stays interpreted code (about 1 us per event against 0.07 us). They are not frozen, since a frozen
dataclass can only set its fields through `object.__setattr__`; nothing changes an event after it
is made. tests/protocols/test_events.py checks each written `__init__` against the class's fields.
Those a parser or session builder holds between segments (and so pickles when a session is parked)
allow interpreted subclasses: the compiled build then unpickles them without calling their
`__init__`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mypy_extensions import mypyc_attr

from mailsniff.limits import MAX_LINE
from mailsniff.mail.rfc2047 import detect_chinese
from mailsniff.model import Direction

__all__ = [
    "CLIENT",
    "SERVER",
    "Anomaly",
    "Direction",
    "Line",
    "ParserAnomalyKind",
    "ReceiveBuffer",
    "SaslStep",
    "StreamGap",
    "TlsStarted",
    "find_dot_line",
    "receive_buffers",
    "to_text",
]


#: The two directions as Final constants: in the compiled build a C global, which the parsers,
#: session builders and pipeline read at every event; `Direction.CLIENT` goes through the
#: Python 3.11 enum class's `__getattr__` hook each time (107 ns).
CLIENT: Final = Direction.CLIENT
SERVER: Final = Direction.SERVER


# -- events every parser emits (the protocol-specific ones live in each parser's module) -------


class ParserAnomalyKind(StrEnum):
    """What kind of anomaly a parser saw: each protocol's parser module has its own StrEnum
    (SmtpAnomalyKind, Pop3AnomalyKind, ImapAnomalyKind) derived from this one. The value is the
    machine name output shows before the detail (`unknown-command: XYZZY`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """Something a well-behaved peer would not send, damage, or a place the parser had to guess."""

    ts_ns: int
    direction: Direction
    raw: bytes = b""  # the offending bytes, when there are some
    #: A member of a protocol's ParserAnomalyKind (SmtpAnomalyKind.UNKNOWN_COMMAND is
    #: "unknown-command"). Typed as their common StrEnum base: the compiled build checks a field
    #: typed with an enum class by exact type, and ImapAnomalyKind is not compiled.
    kind: StrEnum
    detail: str  # one line for a person


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamGap:
    """`length` bytes of `direction` were never captured (0: the capture began mid-connection);
    the parser resynchronises at a line start."""

    ts_ns: int
    direction: Direction
    raw: bytes = b""  # the partial line cut by the loss, when the parser had one
    length: int
    #: The command (the parser's own Command event) whose multi-line body the gap fell into.
    inside: object | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsStarted:
    """The server accepted STARTTLS / STLS (RFC 3207 4, RFC 2595 4): every later byte is TLS."""

    ts_ns: int
    direction: Direction
    raw: bytes = b""


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, kw_only=True, init=False)
class SaslStep:
    """One line of a SASL exchange (RFC 4422 3), base64 undone: a server challenge (SMTP `334`,
    POP3 and IMAP `+ `) or a client response. A response given on the command line itself (SMTP
    `AUTH PLAIN <b64>`, POP3 `AUTH`, IMAP SASL-IR) comes as a client step with initial=True."""

    ts_ns: int
    direction: Direction
    raw: bytes = b""  # the line as sent (for an initial response: its argument)
    mechanism: str  # upper-cased SASL name; "" when the parser never saw the command
    data: bytes  # base64 undone; the bytes as sent when it was not base64
    text: str
    base64: bool  # False: not valid base64 (a hand-typed credential, shown as sent)
    initial: bool = False
    cancelled: bool = False  # the client sent `*` (RFC 4954 4, RFC 5034 4, RFC 3501 6.2.2)
    #: Where the parser numbers its exchanges (SMTP): a response's own number, or the number of
    #: the command or response a challenge answers; None elsewhere.
    seq: int | None = None
    tag: str = ""  # IMAP: the AUTHENTICATE command's tag

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        mechanism: str,
        data: bytes,
        text: str,
        base64: bool,
        raw: bytes = b"",
        initial: bool = False,
        cancelled: bool = False,
        seq: int | None = None,
        tag: str = "",
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.mechanism = mechanism
        self.data = data
        self.text = text
        self.base64 = base64
        self.raw = raw
        self.initial = initial
        self.cancelled = cancelled
        self.seq = seq
        self.tag = tag


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, init=False)
class Line:
    """One line taken from a stream."""

    raw: bytes  # without the line ending; at most MAX_LINE bytes
    ending: bytes  # b"\r\n" or b"\n" (bare LF, tolerated)
    overlong: int = 0  # bytes dropped beyond MAX_LINE (0 when the line fit)

    def __init__(self, raw: bytes, ending: bytes, overlong: int = 0) -> None:
        self.raw = raw
        self.ending = ending
        self.overlong = overlong

    @property
    def size(self) -> int:
        """Bytes this line occupied in the stream."""
        return len(self.raw) + len(self.ending) + self.overlong


def to_text(raw: bytes) -> str:
    """Decode protocol bytes for display: UTF-8 where valid, else Chinese text in GB18030 as the
    message headers are read (a GBK greeting, reply or EHLO line), else each byte as U+FFFD-free
    latin-1. Every line of a dialogue is decoded here, so model, console, JSON and transcript
    show the same text.

    Captured bytes are hostile and arbitrary; this never raises. (Escaping of control characters
    for the terminal is the renderer's job.)
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    chinese = detect_chinese(raw)
    return chinese if chinese is not None else raw.decode("latin-1")


class ReceiveBuffer:
    """Bytes of one direction waiting to be parsed, taken as lines or as exact byte counts.

    Bounded: of a line longer than `max_line` only the first `max_line` bytes are kept; the rest
    is counted (`Line.overlong`) and discarded as it arrives, so memory never grows with a peer
    that never sends a newline. The cut line is returned once its line ending arrives, so the
    lines returned never depend on how the stream was chunked.
    """

    __slots__ = ("_buf", "_max_line", "_head", "_skipped")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._head: bytes | None = None  # first max_line bytes of an overlong line in progress
        self._skipped = 0  # bytes of that line dropped so far

    def __len__(self) -> int:
        return len(self._buf) + (len(self._head) if self._head is not None else 0)

    def append(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> int:
        """Drop everything buffered (a gap made it untrustworthy); returns bytes dropped."""
        n = len(self)
        self._buf.clear()
        self._head = None
        self._skipped = 0
        return n

    def take_line(self) -> Line | None:
        """The next complete line, or None until one is complete."""
        buf = self._buf
        if self._head is not None:
            i = buf.find(b"\n")
            if i < 0:
                # Keep one byte back: it may be the CR of a CRLF split across feeds.
                keep = 1 if buf[-1:] == b"\r" else 0
                self._skipped += len(buf) - keep
                del buf[: len(buf) - keep]
                return None
            ending = b"\r\n" if i > 0 and buf[i - 1] == 0x0D else b"\n"
            self._skipped += i + 1 - len(ending)
            del buf[: i + 1]
            line = Line(self._head, ending, overlong=self._skipped)
            self._head = None
            self._skipped = 0
            return line
        i = buf.find(b"\n", 0, self._max_line + 2)
        if i < 0:
            if len(buf) > self._max_line + 1:
                self._head = bytes(buf[: self._max_line])
                del buf[: self._max_line]
                return self.take_line()
            return None
        if i > 0 and buf[i - 1] == 0x0D:
            raw, ending = bytes(buf[: i - 1]), b"\r\n"
        else:
            raw, ending = bytes(buf[:i]), b"\n"
        del buf[: i + 1]
        if len(raw) > self._max_line:
            return Line(raw[: self._max_line], ending, overlong=len(raw) - self._max_line)
        return Line(raw, ending)

    def take_bytes(self, n: int) -> bytes:
        """Up to `n` bytes from the front (fewer if fewer are buffered)."""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def take_rest(self) -> bytes:
        """Everything buffered (a partial line at the end of the stream; of an overlong one,
        its first `max_line` bytes and what followed the dropped part)."""
        out = (self._head or b"") + bytes(self._buf)
        self._buf.clear()
        self._head = None
        self._skipped = 0
        return out

    def find(self, needle: bytes) -> int:
        return self._buf.find(needle)

    def find_dot_line(self) -> int:
        """`find_dot_line` over everything buffered: the index of the first newline followed
        by a dot, or -1."""
        return find_dot_line(self._buf, 0, len(self._buf))

    def peek(self, n: int) -> bytes:
        return bytes(self._buf[:n])


#: Dots not at a line start passed over one by one before `find_dot_line` hands the rest to
#: the two-byte search: text has a dot every few dozen bytes, base64 none.
_DOT_HOPS: Final = 8


def find_dot_line(data: bytes | bytearray, start: int, end: int) -> int:
    """`data.find(b"\\n.", start, end)`: the dot-stuffing and terminator lines of SMTP DATA and
    POP3 multi-line replies.

    It looks for the dot first. That is memchr, many times as fast as the two-byte search, and a
    message body has few dots (base64 has none); after `_DOT_HOPS` dots that follow no newline it
    searches for the pair from there.
    """
    i = data.find(b".", start + 1, end)
    hops = 0
    while i >= 0:
        if data[i - 1] == 0x0A:
            return i - 1
        hops += 1
        if hops > _DOT_HOPS:
            return data.find(b"\n.", i, end)
        i = data.find(b".", i + 1, end)
    return -1


def receive_buffers() -> dict[Direction, ReceiveBuffer]:
    """A parser's ReceiveBuffer for each direction of its connection."""
    return {Direction.CLIENT: ReceiveBuffer(), Direction.SERVER: ReceiveBuffer()}
