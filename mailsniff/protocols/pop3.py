"""Sans-IO POP3 dialogue parser (RFC 1939, 2449, 5034, 2595).

Fed `(ts_ns, direction, bytes)` in stream order, it hands back typed events: the greeting, each
command, each response paired first-in first-out with the command it answers, the content of
multi-line responses (dot-unstuffed), SASL steps, the switch to TLS, and anomalies. Captured bytes
are hostile: nothing here raises on them, and memory is bounded by `limits.MAX_LINE` per direction
(plus a read window of at most `BODY_WINDOW` while a message body streams through) and
`MAX_PENDING_COMMANDS` queued commands.

RETR/TOP bodies are the bulk of POP3 traffic: they are searched for their terminator and
dot-unstuffed a buffered chunk at a time (`bytes.find`, `bytes.replace`), not line by line.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from mypy_extensions import mypyc_attr

from mailsniff.limits import MAX_LINE, MAX_PENDING_COMMANDS
from mailsniff.model import Direction
from mailsniff.protocols.base import (
    CLIENT,
    SERVER,
    Anomaly,
    Line,
    ParserAnomalyKind,
    ReceiveBuffer,
    SaslStep,
    StreamGap,
    TlsStarted,
    find_dot_line,
    receive_buffers,
    to_text,
)
from mailsniff.protocols.sasl import sasl_step

__all__ = [
    "BODY_WINDOW",
    "Command",
    "Greeting",
    "MultilineData",
    "Pop3AnomalyKind",
    "Pop3Event",
    "Pop3Parser",
    "Response",
    "ResponseEnd",
    "is_greeting",
    "multiline_expected",
    "parse_status",
]


class Pop3AnomalyKind(ParserAnomalyKind):
    """The anomalies the POP3 parser reports."""

    NO_GREETING = "no-greeting"  # the client spoke first: the greeting was not captured
    BAD_GREETING = "bad-greeting"  # the server's first line is not +OK/-ERR
    EMPTY_COMMAND = "empty-command"  # an empty line from the client
    MALFORMED_COMMAND = "malformed-command"  # a client line that is not a POP3 verb
    OVERLONG_LINE = "overlong-line"  # a line beyond limits.MAX_LINE: the rest dropped
    UNTERMINATED_LINE = "unterminated-line"  # the stream ended inside a line
    RESYNC = "resync"  # after a gap: a line cut by it skipped
    UNKNOWN_SERVER_LINE = "unknown-server-line"  # a server line where +OK/-ERR belongs
    UNPAIRED_RESPONSE = "unpaired-response"  # a response while no command waits for one
    UNANSWERED_COMMANDS = "unanswered-commands"  # more commands waiting than kept
    MISSING_TERMINATOR = "missing-terminator"  # a multi-line response not ended by "."
    SKIPPED_LINES = "skipped-lines"  # server lines of an unknown response skipped
    ANSWERS_LOST = "answers-lost"  # the responses to some commands were never captured
    CLEARTEXT_AFTER_STLS = "cleartext-after-stls"  # cleartext where the TLS handshake belongs
    PIPELINED_AFTER_STLS = "pipelined-after-stls"  # commands sent in clear after STLS


#: Most bytes of a message body looked at (copied out of the receive buffer) at once. A body's
#: first look is small (`_FIRST_WINDOW`), so many tiny bodies in one large feed stay cheap.
BODY_WINDOW = 1024 * 1024
_FIRST_WINDOW: Final = 16 * 1024


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, kw_only=True, init=False)
class Greeting:
    """The server's first line (RFC 1939 4): `+OK text`, or `-ERR text` when it refuses."""

    ts_ns: int
    direction: Direction
    raw: bytes  # the line without its ending
    ok: bool
    text: str  # after the status indicator
    challenge: str | None  # APOP timestamp `<...>` (RFC 1939 7), when the greeting carries one

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        raw: bytes,
        ok: bool,
        text: str,
        challenge: str | None,
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.raw = raw
        self.ok = ok
        self.text = text
        self.challenge = challenge


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, kw_only=True, init=False)
class Command:
    """One client command line (RFC 1939 3); the verb upper-cased, the argument as sent."""

    ts_ns: int
    direction: Direction
    raw: bytes  # the line without its ending
    verb: str  # upper-cased ("RETR" for "retr")
    argument: str  # everything after the first space, as sent ("" when none)
    args: tuple[str, ...]  # the argument split on whitespace

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        raw: bytes,
        verb: str,
        argument: str,
        args: tuple[str, ...],
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.raw = raw
        self.verb = verb
        self.argument = argument
        self.args = args


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, kw_only=True, init=False)
class Response:
    """A `+OK` / `-ERR` status line, paired with the command it answers (None: no command seen)."""

    ts_ns: int
    direction: Direction
    raw: bytes
    ok: bool
    text: str  # after the status indicator and its space
    code: str | None  # RFC 2449 8 extended response code, e.g. "AUTH", "IN-USE", "SYS/TEMP"
    multiline: bool  # a dot-terminated body follows (MultilineData... then ResponseEnd)
    command: Command | None

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        raw: bytes,
        ok: bool,
        text: str,
        code: str | None,
        multiline: bool,
        command: Command | None,
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.raw = raw
        self.ok = ok
        self.text = text
        self.code = code
        self.multiline = multiline
        self.command = command


@dataclass(slots=True, kw_only=True, init=False)
class MultilineData:
    """Content of a multi-line response body, dot-unstuffed (RFC 1939 3).

    Listings (CAPA, LIST, UIDL, AUTH) and the lines of a body damaged by a gap come one line per
    event: `raw` is the line without its ending. A RETR/TOP body comes in runs of whole lines,
    as many as were buffered: `raw` is those bytes as sent, line endings included. A line longer
    than `limits.MAX_LINE` may be split across events. How a body is split into events depends
    on how its bytes arrived; the concatenated `data`, and every other event, do not.
    """

    ts_ns: int
    direction: Direction
    raw: bytes  # as sent, still dot-stuffed: one line without its ending, or a run of lines
    data: bytes  # the content: dot-unstuffed, with the line endings as sent (CRLF or bare LF)
    dropped: int = 0  # bytes of an overlong listing line that were not kept (at least this many)

    def __init__(
        self, *, ts_ns: int, direction: Direction, raw: bytes, data: bytes, dropped: int = 0
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.raw = raw
        self.data = data
        self.dropped = dropped


@dataclass(slots=True, kw_only=True, init=False)
class ResponseEnd:
    """The end of a multi-line body: the `.` line, or an ending forced by damage or close."""

    ts_ns: int
    direction: Direction
    raw: bytes  # b"." for a proper terminator, b"" otherwise
    command: Command | None
    lines: int  # body lines (without the terminator)
    complete: bool  # False: the terminator was never seen (close, or a missing `.`)

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        raw: bytes,
        command: Command | None,
        lines: int,
        complete: bool,
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.raw = raw
        self.command = command
        self.lines = lines
        self.complete = complete


Pop3Event = (
    Greeting
    | Command
    | Response
    | MultilineData
    | ResponseEnd
    | SaslStep
    | TlsStarted
    | StreamGap
    | Anomaly
)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

#: Which +OK answers carry a dot-terminated body. -ERR is always one line (RFC 1939 3).
#:   CAPA             always (RFC 2449 5)
#:   RETR, TOP        always (RFC 1939 7, 7)
#:   LIST, UIDL       without an argument only (RFC 1939 5, 7)
#:   AUTH             without an argument only: the mechanism list (RFC 1734 practice, RFC 5034 4)
_MULTILINE_ALWAYS: Final = frozenset({"CAPA", "RETR", "TOP"})
_MULTILINE_WITHOUT_ARGUMENT: Final = frozenset({"LIST", "UIDL", "AUTH"})
#: Bodies whose lines are short listings, never message text: a status line inside one means the
#: server forgot the terminator (Zeek's bad-list-retr-crafted trace).
_LISTING: Final = frozenset({"CAPA", "LIST", "UIDL", "AUTH"})
#: Verbs whose line after a gap is trusted as the start of a command (RFC 1939, 2449, 5034, 2595).
_KNOWN_VERBS: Final = frozenset(
    {
        "USER",
        "PASS",
        "APOP",
        "AUTH",
        "CAPA",
        "STAT",
        "LIST",
        "UIDL",
        "TOP",
        "RETR",
        "DELE",
        "RSET",
        "NOOP",
        "STLS",
        "QUIT",
        "LAST",
        "UTF8",
        "LANG",
    }
)

# verb = 1*40(ALPHA / DIGIT / "-" / "_")  (RFC 1939 3 says 3-4 letters; vendors add more)
_VERB: Final = re.compile(rb"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
_ARG_SEP: Final = re.compile(r"[ \t\r\n\x0b\x0c]+")

# APOP timestamp: msg-id "<" ... ">" in the greeting (RFC 1939 7)
_TIMESTAMP: Final = re.compile(rb"<[^<>\s]*>")
# resp-code = "[" resp-level *("/" resp-level) "]" (RFC 2449 8)
_RESP_CODE: Final = re.compile(r"^\[([^\]\s]{1,64})\]")


def multiline_expected(command: Command | None) -> bool:
    """Whether a +OK answer to `command` is followed by a dot-terminated body."""
    if command is None:
        return False
    if command.verb in _MULTILINE_ALWAYS:
        return True
    return command.verb in _MULTILINE_WITHOUT_ARGUMENT and not command.args


def parse_status(raw: bytes) -> tuple[bool, str] | None:
    """(ok, text) for a `+OK ...` / `-ERR ...` line, else None (RFC 1939 3)."""
    head = raw[:4].upper()
    if head.startswith(b"+OK"):
        rest = raw[3:]
    elif head == b"-ERR":
        rest = raw[4:]
    else:
        return None
    if rest[:1] not in (b"", b" ", b"\t"):
        return None
    return head.startswith(b"+OK"), to_text(rest.lstrip(b" \t"))


def _is_status(raw: bytes) -> bool:
    return parse_status(raw) is not None


def _mechanism(command: Command) -> str:
    return command.args[0].upper() if command.args else ""


#: A TLS record carrying a handshake starts with content type 22 (RFC 8446 5.1).
_TLS_HANDSHAKE: Final = 22


class _Sync(Enum):
    """Where the server direction stands."""

    GREETING = "greeting"  # nothing yet: the first line is the greeting (RFC 1939 4)
    RESPONSE = "response"  # expecting status lines
    BODY = "body"  # inside a multi-line body
    UNKNOWN = "unknown"  # after a gap or a stray response: non-status lines are skipped
    TLS = "tls"  # encrypted from here on (RFC 2595 4)


#: Every move the server side may make, and why. `Pop3Parser._enter` refuses any other, so a
#: bug in the parser shows up in the property tests instead of as silent misparsing.
_TRANSITIONS: dict[tuple[_Sync, _Sync], str] = {
    (_Sync.GREETING, _Sync.RESPONSE): "greeting line (RFC 1939 4); or the client spoke first",
    (_Sync.GREETING, _Sync.UNKNOWN): "capture began mid-connection: gap of unknown length",
    (_Sync.RESPONSE, _Sync.BODY): "+OK to CAPA/RETR/TOP/LIST/UIDL/AUTH (RFC 1939 3, 2449 5)",
    (_Sync.RESPONSE, _Sync.TLS): "+OK to STLS (RFC 2595 4)",
    (_Sync.TLS, _Sync.RESPONSE): (
        "first client bytes after +OK to STLS are not a TLS record: a capture decrypted back to "
        "cleartext (or injected commands, CVE-2011-0411): parsed as commands"
    ),
    (_Sync.RESPONSE, _Sync.UNKNOWN): "a gap between responses, or a response to no command",
    (_Sync.BODY, _Sync.RESPONSE): "'.' terminator (RFC 1939 3), missing terminator, or close",
    (_Sync.UNKNOWN, _Sync.RESPONSE): "a +OK/-ERR line: back in step",
}


@dataclass(slots=True)
class _Body:
    command: Command | None
    lines: int = 0
    damaged: bool = False  # a gap fell inside: a status line may mean the terminator was lost
    bulk: bool = False  # read in chunks (_body_chunks), not line by line
    line_start: bool = True  # `partial` (or, when empty, the next unread byte) begins a line
    # the unfinished last line of a bulk body, taken out of the receive buffer so that it is not
    # searched again with every segment; at most MAX_LINE bytes
    partial: bytearray = field(default_factory=bytearray)


class Pop3Parser:
    """One POP3 connection, both directions. Feed bytes in stream order; read events back.

    Example:
        parser = Pop3Parser()
        events = parser.feed(ts, SERVER, b"+OK ready\\r\\n")
    """

    __slots__ = (
        "_buffers",
        "_after_gap",
        "_pending",
        "_sync",
        "_body",
        "_sasl",
        "_sasl_initial",
        "_sasl_continued",
        "_first_command_ts",
        "_server_started",
        "_skipped",
        "_lost",
        "_closed",
        "_tls_unchecked",
        "_overflowed",
        "_pipelining",
        "_tls_rest",
    )

    def __init__(self) -> None:
        self._buffers = receive_buffers()
        # After a gap the first line is the tail of a line cut by the loss: distrust it.
        self._after_gap = {CLIENT: False, SERVER: False}
        self._pending: deque[Command] = deque()
        self._sync = _Sync.GREETING
        self._body: _Body | None = None
        self._sasl: Command | None = None  # AUTH <mechanism> awaiting its final answer
        self._sasl_initial = False  # ...sent with an initial response
        self._sasl_continued = False  # ...and the server asked for more since the last step
        self._first_command_ts: int | None = None  # first command, when sent before any reply
        self._server_started = False
        self._skipped = 0  # server lines skipped while out of sync
        self._lost = 0  # commands whose answers were found lost while out of sync
        self._closed = False
        self._tls_unchecked = False  # STLS accepted; the client's first bytes not yet seen
        self._overflowed = False
        self._pipelining = False  # CAPA listed PIPELINING (RFC 2449 6.6)
        # Bytes each direction had buffered past the +OK to STLS, for `tls_handover`.
        self._tls_rest: dict[Direction, bytes] = {}

    # ----------------------------------------------------------------------------------------
    # The sans-IO interface
    # ----------------------------------------------------------------------------------------

    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[Pop3Event]:
        """Bytes of one direction, in stream order.

        Args:
            ts_ns: capture time of the bytes (ns since the epoch).
            direction: who sent them.
            data: the bytes, any length, split anywhere.

        Returns:
            The events completed by these bytes, in order.
        """
        out: list[Pop3Event] = []
        if self._closed or not data:
            return out
        if self._sync is _Sync.TLS:
            if not (self._tls_unchecked and direction is CLIENT):
                return out
            self._tls_unchecked = False
            if data[0] == _TLS_HANDSHAKE:
                return out
            # Cleartext where the TLS handshake should be: a decrypted capture, or injection.
            # Say so, and read it for what it says (as the SMTP parser does after STARTTLS).
            detail = "client bytes after STLS are cleartext: parsed as commands"
            out.append(
                self._anomaly(ts_ns, direction, b"", Pop3AnomalyKind.CLEARTEXT_AFTER_STLS, detail)
            )
            self._enter(_Sync.RESPONSE)
        if direction is SERVER and not self._server_started:
            self._server_started = True
            if self._sync is _Sync.GREETING and self._first_command_ts is not None:
                if self._first_command_ts < ts_ns:
                    # The client spoke before the server said anything: the greeting was
                    # not captured, so this first line already answers the client.
                    self._enter(_Sync.RESPONSE)
                    out.append(
                        Anomaly(
                            ts_ns=ts_ns,
                            direction=direction,
                            raw=b"",
                            kind=Pop3AnomalyKind.NO_GREETING,
                            detail="the client spoke first: the server greeting was not captured",
                        )
                    )
        buf = self._buffers[direction]
        server = direction is SERVER
        if server and not len(buf) and self._in_bulk_body():
            # The hot path: a message body arriving segment by segment goes straight to the
            # body scanner; only what follows its terminator is buffered.
            used = self._body_window(ts_ns, data, out)
            if used < 0:
                return out
            data = data[used:]
        buf.append(data)
        while not self._encrypted():
            if server and self._in_bulk_body():
                if not self._body_chunks(ts_ns, buf, out):
                    break  # the rest of the body has not arrived yet
                continue
            line = buf.take_line()
            if line is None:
                break
            self._line(ts_ns, direction, line, out)
        if self._encrypted():
            buf.clear()
        return out

    def tls_handover(self) -> dict[Direction, bytes]:
        """After `TlsStarted`, for a layer that decrypts the TLS: the bytes each direction had
        buffered past the +OK to STLS (the first TLS records, not parsed), handed over once."""
        rest, self._tls_rest = self._tls_rest, {}
        return rest

    def resume_plaintext(self) -> None:
        """The bytes fed from now on are the dialogue inside TLS, decrypted by a layer below:
        parse them as commands and responses (RFC 2595 4: the client starts over, e.g. CAPA)."""
        if self._sync is _Sync.TLS:
            self._tls_unchecked = False
            self._enter(_Sync.RESPONSE)

    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[Pop3Event]:
        """`length` bytes of `direction` were never captured (0: capture began mid-connection).

        The partial line is discarded and parsing resumes at the next line boundary. Inside a
        multi-line body the body goes on (now partial) until its terminator.
        """
        out: list[Pop3Event] = []
        if self._closed or self._sync is _Sync.TLS:
            return out
        buf = self._buffers[direction]
        partial = self._take_rest(direction)
        buf.clear()
        self._after_gap[direction] = True
        inside: Command | None = None
        if direction is SERVER:
            self._server_started = True
            if self._sync is _Sync.BODY and self._body is not None:
                # Inside a body every captured byte is content: keep the partial line, and the
                # tail after the gap (see _server_line), so the message loses only what was lost.
                body = self._body
                body.damaged = True
                body.bulk = False  # line by line from here on
                body.line_start = True  # the line cut by the gap is taken whole, as content
                inside = body.command
                if partial:  # (a status line here may end the body: see _body_line)
                    self._body_line(ts_ns, Line(partial, b""), out, tail=True)
            elif self._sync is _Sync.GREETING:
                self._enter(_Sync.UNKNOWN if length == 0 else _Sync.RESPONSE)
            elif self._sync is _Sync.RESPONSE:
                self._enter(_Sync.UNKNOWN)
            if length and self._sync is _Sync.UNKNOWN and not self._pipelining:
                self._drop_answered()
        else:
            # A lost client line may have been a SASL step or a command: whichever, the
            # server's answers still pair FIFO with what we did see.
            self._sasl_continued = False
        out.append(
            StreamGap(ts_ns=ts_ns, direction=direction, raw=partial, length=length, inside=inside)
        )
        return out

    def close(self, ts_ns: int) -> list[Pop3Event]:
        """The connection ended: flush unterminated lines and any open body."""
        out: list[Pop3Event] = []
        if self._closed:
            return out
        if self._sync is not _Sync.TLS:
            for direction in (CLIENT, SERVER):
                rest = self._take_rest(direction)
                if not rest:
                    continue
                if direction is SERVER and self._sync is not _Sync.UNKNOWN:
                    # A server that closes right after its last line sometimes omits the CRLF.
                    out.append(
                        self._anomaly(ts_ns, direction, rest, Pop3AnomalyKind.UNTERMINATED_LINE)
                    )
                    self._line(ts_ns, direction, Line(rest.rstrip(b"\r"), b""), out)
                else:
                    out.append(
                        self._anomaly(ts_ns, direction, rest, Pop3AnomalyKind.UNTERMINATED_LINE)
                    )
            if self._sync is _Sync.BODY:
                self._end_body(ts_ns, b"", False, out)
            self._flush_skipped(ts_ns, out)
        self._closed = True
        return out

    # ----------------------------------------------------------------------------------------
    # Lines
    # ----------------------------------------------------------------------------------------

    def _line(self, ts: int, direction: Direction, line: Line, out: list[Pop3Event]) -> None:
        if direction is CLIENT:
            self._client_line(ts, line, out)
        else:
            self._server_line(ts, line, out)

    def _client_line(self, ts: int, line: Line, out: list[Pop3Event]) -> None:
        raw = line.raw
        client = CLIENT
        if self._after_gap[client]:
            self._after_gap[client] = False
            first = raw.split(b" ", 1)[0].upper().decode("ascii", "replace")
            if self._in_sasl() or first not in _KNOWN_VERBS:
                out.append(
                    self._anomaly(
                        ts, client, raw, Pop3AnomalyKind.RESYNC, "line cut by a gap skipped"
                    )
                )
                return
        if line.overlong:
            out.append(
                self._anomaly(
                    ts,
                    client,
                    raw,
                    Pop3AnomalyKind.OVERLONG_LINE,
                    f"{line.overlong} bytes beyond the limit",
                )
            )
        if self._in_sasl() and self._sasl is not None:
            self._sasl_continued = False
            out.append(sasl_step(ts, client, raw, raw, _mechanism(self._sasl)))
            return
        if not raw.strip():
            out.append(
                self._anomaly(
                    ts, client, raw, Pop3AnomalyKind.EMPTY_COMMAND, "empty line from client"
                )
            )
            return
        verb_raw, _, arg_raw = raw.partition(b" ")
        verb = verb_raw.decode("ascii", "replace").upper()
        argument = to_text(arg_raw)
        cmd = Command(
            ts_ns=ts,
            direction=client,
            raw=raw,
            verb=verb,
            argument=argument,
            # RFC 1939 3: arguments are separated by single spaces; only ASCII white space
            # splits them (str.split() would also split on \x1c-\x1f, \x85 ...)
            args=tuple(t for t in _ARG_SEP.split(argument) if t),
        )
        out.append(cmd)
        if not _VERB.match(verb_raw):
            out.append(
                self._anomaly(ts, client, raw, Pop3AnomalyKind.MALFORMED_COMMAND, "not a POP3 verb")
            )
        if self._first_command_ts is None and not self._server_started:
            self._first_command_ts = ts
        if len(self._pending) >= MAX_PENDING_COMMANDS:
            self._pending.popleft()
            if not self._overflowed:
                self._overflowed = True
                out.append(
                    self._anomaly(
                        ts,
                        client,
                        b"",
                        Pop3AnomalyKind.UNANSWERED_COMMANDS,
                        f"more than {MAX_PENDING_COMMANDS} commands without an answer",
                    )
                )
        self._pending.append(cmd)
        # RFC 5034 4: AUTH mechanism [initial-response]
        if verb == "AUTH" and cmd.args:
            mechanism = cmd.args[0].upper()
            self._sasl = cmd
            self._sasl_initial = len(cmd.args) > 1
            self._sasl_continued = False
            if self._sasl_initial:
                blob = cmd.args[1].encode("utf-8", "surrogateescape")
                out.append(sasl_step(ts, client, blob, blob, mechanism, initial=True))

    def _server_line(self, ts: int, line: Line, out: list[Pop3Event]) -> None:
        raw = line.raw
        server = SERVER
        if self._sync is _Sync.BODY and not self._after_gap[server]:  # the hot path
            self._body_line(ts, line, out)
            return
        if self._after_gap[server]:
            self._after_gap[server] = False
            if self._sync is _Sync.BODY:
                self._body_line(ts, line, out, tail=raw != b".")
                return
            if not _is_status(raw):
                out.append(
                    self._anomaly(
                        ts, server, raw, Pop3AnomalyKind.RESYNC, "line cut by a gap skipped"
                    )
                )
                return
        if line.overlong and self._sync is not _Sync.BODY:
            out.append(
                self._anomaly(
                    ts,
                    server,
                    raw,
                    Pop3AnomalyKind.OVERLONG_LINE,
                    f"{line.overlong} bytes beyond the limit",
                )
            )
        match self._sync:
            case _Sync.GREETING:
                self._greeting(ts, raw, out)
            case _Sync.BODY:
                self._body_line(ts, line, out)
            case _Sync.UNKNOWN:
                if _is_status(raw):
                    self._flush_skipped(ts, out)
                    self._enter(_Sync.RESPONSE)
                    self._status_line(ts, raw, out)
                else:
                    self._skipped += 1
                    if raw == b"." and not line.overlong:
                        self._drop_lost_answers()
            case _:
                self._status_line(ts, raw, out)

    # RFC 1939 4: "Once the TCP connection has been opened by a POP3 client, the POP3 server
    # issues a one line greeting."
    def _greeting(self, ts: int, raw: bytes, out: list[Pop3Event]) -> None:
        self._enter(_Sync.RESPONSE)
        status = parse_status(raw)
        if status is None:
            out.append(self._anomaly(ts, SERVER, raw, Pop3AnomalyKind.BAD_GREETING, "not +OK/-ERR"))
            return
        match = _TIMESTAMP.search(raw)
        out.append(
            Greeting(
                ts_ns=ts,
                direction=SERVER,
                raw=raw,
                ok=status[0],
                text=status[1],
                challenge=to_text(match.group(0)) if match else None,
            )
        )

    def _status_line(self, ts: int, raw: bytes, out: list[Pop3Event]) -> None:
        server = SERVER
        head = self._pending[0] if self._pending else None
        # RFC 5034 4: continuation = "+" SP [base64]; only meaningful inside an AUTH exchange.
        if head is not None and head is self._sasl and raw[:1] == b"+" and not _is_status(raw):
            self._sasl_continued = True
            blob = raw[1:].strip()
            out.append(sasl_step(ts, server, raw, blob, _mechanism(head)))
            return
        status = parse_status(raw)
        if status is None:
            out.append(
                self._anomaly(
                    ts, server, raw, Pop3AnomalyKind.UNKNOWN_SERVER_LINE, "expected +OK or -ERR"
                )
            )
            return
        ok, text = status
        command = self._pending.popleft() if self._pending else None
        if command is not None and command is self._sasl:
            self._sasl = None
        code_match = _RESP_CODE.match(text)
        multiline = ok and multiline_expected(command)
        out.append(
            Response(
                ts_ns=ts,
                direction=server,
                raw=raw,
                ok=ok,
                text=text,
                code=code_match.group(1).upper() if code_match else None,
                multiline=multiline,
                command=command,
            )
        )
        if command is None:
            out.append(
                self._anomaly(
                    ts,
                    server,
                    raw,
                    Pop3AnomalyKind.UNPAIRED_RESPONSE,
                    "no command awaits an answer",
                )
            )
            self._enter(_Sync.UNKNOWN)  # a body may follow that we cannot recognise
            return
        if multiline:
            self._enter(_Sync.BODY)
            self._body = _Body(command, bulk=command.verb not in _LISTING)
        elif ok and command.verb == "STLS":
            out.append(TlsStarted(ts_ns=ts, direction=server, raw=raw))
            if self._pending:
                # RFC 2595 4 / CVE-2011-0411: commands sent in clear after STLS must be dropped.
                out.append(
                    self._anomaly(
                        ts,
                        CLIENT,
                        b"",
                        Pop3AnomalyKind.PIPELINED_AFTER_STLS,
                        f"{len(self._pending)} command(s) sent in clear after STLS",
                    )
                )
                self._pending.clear()
            self._enter(_Sync.TLS)
            self._tls_unchecked = True
            for direction, buf in self._buffers.items():
                rest = buf.take_rest()
                if rest:
                    self._tls_rest[direction] = rest
                buf.clear()

    def _body_line(self, ts: int, line: Line, out: list[Pop3Event], *, tail: bool = False) -> None:
        """One body line; `tail`: a piece cut by a gap, taken as content (no unstuffing)."""
        body = self._body
        raw = line.raw
        if body is None:  # defensive: BODY without a body record
            self._enter(_Sync.RESPONSE)
            self._status_line(ts, raw, out)
            return
        # The rest of a line whose start came in chunks (close after an overlong body line).
        tail = tail or not body.line_start
        if raw == b"." and not line.overlong and not tail:
            self._end_body(ts, raw, True, out)
            return
        verb = body.command.verb if body.command is not None else ""
        first = raw[:1]
        if (
            (first == b"+" or first == b"-")
            and _is_status(raw)
            and (verb in _LISTING or (body.damaged and self._pending))
        ):
            # The terminator was never sent (or was lost in a gap): this line is the next
            # response. A message may quote "+OK" lines, so only listings, or bodies already
            # damaged with a command still waiting, are cut here.
            out.append(
                self._anomaly(
                    ts,
                    SERVER,
                    raw,
                    Pop3AnomalyKind.MISSING_TERMINATOR,
                    f"{verb} body not ended by '.'",
                )
            )
            self._end_body(ts, b"", False, out)
            self._status_line(ts, raw, out)
            return
        # RFC 1939 3: a line beginning with "." is byte-stuffed; drop the first dot.
        content = raw[1:] if first == b"." and not tail else raw
        if verb == "CAPA" and content.strip().upper() == b"PIPELINING":
            self._pipelining = True
        if line.overlong:
            out.append(
                self._anomaly(
                    ts,
                    SERVER,
                    raw[:80],
                    Pop3AnomalyKind.OVERLONG_LINE,
                    f"at least {line.overlong} bytes of a body line dropped",
                )
            )
        body.lines += 1
        out.append(
            MultilineData(
                ts_ns=ts,
                direction=SERVER,
                raw=raw,
                data=content + line.ending,
                dropped=line.overlong,
            )
        )

    def _in_bulk_body(self) -> bool:
        body = self._body
        return (
            self._sync is _Sync.BODY
            and body is not None
            and body.bulk
            and not self._after_gap[SERVER]
        )

    def _take_rest(self, direction: Direction) -> bytes:
        """Every unparsed byte of `direction`, the unfinished line of a bulk body first."""
        rest = self._buffers[direction].take_rest()
        body = self._body
        if direction is SERVER and body is not None and body.partial:
            rest = bytes(body.partial) + rest
            body.partial.clear()
        return rest

    def _body_chunks(self, ts: int, buf: ReceiveBuffer, out: list[Pop3Event]) -> bool:
        """Read a RETR/TOP body from `buf` a window at a time; True once its terminator is read."""
        window = _FIRST_WINDOW
        while True:
            size = len(buf)
            if not size:
                return False
            look = min(size, window)
            window = min(window * 2, BODY_WINDOW)
            used = self._body_window(ts, buf.peek(look), out)
            if used >= 0:
                buf.take_bytes(used)
                return True
            buf.take_bytes(look)

    def _body_window(self, ts: int, new: bytes, out: list[Pop3Event]) -> int:
        """The next bytes of a RETR/TOP body: how many of them the body used up to and including
        its terminator, or -1 when they were all body.

        Only whole lines are passed on; the unfinished last line waits in `_Body.partial` (at
        most MAX_LINE bytes of it, as in line mode), so a terminator or a stuffed dot split
        across segments is never misread, and a gap or close finds the same partial line
        however the bytes arrived.
        """
        body = self._body
        assert body is not None
        held = len(body.partial)
        if held:
            if new.find(b"\n") < 0:  # the same line goes on (find: see rfc2047.decode_header_bytes)
                body.partial += new
                self._overlong_pieces(ts, out)
                return -1
            chunk = bytes(body.partial) + new
            body.partial.clear()
        else:
            chunk = new
        used = self._scan_body(ts, chunk, out)
        if self._body is not body:  # the terminator was read: the rest is line by line
            return used - held
        if used < len(chunk):
            body.partial += chunk[used:]
            self._overlong_pieces(ts, out)
        return -1

    def _scan_body(self, ts: int, chunk: bytes, out: list[Pop3Event]) -> int:
        """Pass on the whole lines of `chunk`, up to and including the terminator; bytes used."""
        body = self._body
        assert body is not None
        end = chunk.rfind(b"\n") + 1  # whole lines end here
        if not end:
            return 0
        # RFC 1939 3: the body ends with a line holding a single "." (CRLF; bare LF tolerated).
        # Most chunks have no line after their first that begins with a dot: one search says so.
        dots = find_dot_line(chunk, 0, end)
        dot = -1  # where the "." of the terminator line is
        if body.line_start and (chunk.startswith(b".\r\n") or chunk.startswith(b".\n")):
            dot = 0
        elif dots >= 0:
            crlf = chunk.find(b"\n.\r\n", dots, end)
            lf = chunk.find(b"\n.\n", dots, crlf + 3 if crlf >= 0 else end)
            first = lf if lf >= 0 else crlf
            if first >= 0:
                dot = first + 1
        if dot < 0:
            self._body_content(ts, chunk if end == len(chunk) else chunk[:end], out, dots >= 0)
            return end
        if dot:
            self._body_content(ts, chunk[:dot], out, dots >= 0)
        self._end_body(ts, b".", True, out)
        return dot + (2 if chunk[dot + 1 : dot + 2] == b"\n" else 3)

    def _overlong_pieces(self, ts: int, out: list[Pop3Event]) -> None:
        """Pass on a line longer than MAX_LINE in MAX_LINE pieces, so memory stays bounded.

        Where it is cut depends only on the stream, never on how it was segmented.
        """
        body = self._body
        assert body is not None
        partial = body.partial
        while len(partial) > MAX_LINE:
            self._body_content(ts, bytes(partial[:MAX_LINE]), out)
            del partial[:MAX_LINE]

    def _body_content(
        self, ts: int, raw: bytes, out: list[Pop3Event], stuffed: bool = True
    ) -> None:
        """One run of body bytes (whole lines, or a piece of an overlong one) as MultilineData.

        `stuffed`: False when no line of `raw` after its first begins with a dot.
        """
        body = self._body
        assert body is not None
        # RFC 1939 3: a line beginning with "." is byte-stuffed; drop the first dot.
        data = raw.replace(b"\n.", b"\n") if stuffed else raw
        if body.line_start and raw[:1] == b".":
            data = data[1:]
        body.line_start = raw[-1:] == b"\n"
        body.lines += raw.count(b"\n")
        out.append(MultilineData(ts_ns=ts, direction=SERVER, raw=raw, data=data))

    def _end_body(self, ts: int, raw: bytes, complete: bool, out: list[Pop3Event]) -> None:
        body = self._body
        self._body = None
        self._enter(_Sync.RESPONSE)
        if body is None:
            return
        out.append(
            ResponseEnd(
                ts_ns=ts,
                direction=SERVER,
                raw=raw,
                command=body.command,
                lines=body.lines,
                complete=complete,
            )
        )

    # ----------------------------------------------------------------------------------------
    # Helpers
    # ----------------------------------------------------------------------------------------

    def _encrypted(self) -> bool:
        return self._sync is _Sync.TLS

    def _enter(self, state: _Sync) -> None:
        if state is not self._sync and (self._sync, state) not in _TRANSITIONS:
            raise AssertionError(f"POP3 parser bug: {self._sync} -> {state}")
        self._sync = state

    def _in_sasl(self) -> bool:
        """Client lines are SASL responses, not commands (RFC 5034 4)."""
        if self._sasl is None:
            return False
        return not self._sasl_initial or self._sasl_continued

    def _drop_answered(self) -> None:
        """Lost server bytes, and a client that does not pipeline: it sent each command after
        the answer to the one before, so every waiting command but the last was answered in
        the lost bytes (RFC 2449 6.6). Forget them, or the next answer pairs with the oldest."""
        while len(self._pending) > 1:
            if self._pending.popleft() is self._sasl:
                self._sasl = None
            self._lost += 1

    def _drop_lost_answers(self) -> None:
        """A '.' ended a body whose +OK was lost: forget the commands it and earlier lines answered.

        Without this, the next status line would pair with the RETR whose answer we never saw
        and the parser would take the following responses for its body.
        """
        for index, command in enumerate(self._pending):
            if multiline_expected(command):
                for _ in range(index + 1):
                    dropped = self._pending.popleft()
                    if dropped is self._sasl:
                        self._sasl = None
                    self._lost += 1
                return

    def _flush_skipped(self, ts: int, out: list[Pop3Event]) -> None:
        if self._skipped or self._lost:
            parts = []
            if self._skipped:
                parts.append(f"{self._skipped} server line(s) of an unknown response skipped")
            if self._lost:
                parts.append(f"the answers to {self._lost} command(s) were lost")
            kind = Pop3AnomalyKind.SKIPPED_LINES if self._skipped else Pop3AnomalyKind.ANSWERS_LOST
            out.append(self._anomaly(ts, SERVER, b"", kind, "; ".join(parts)))
            self._skipped = 0
            self._lost = 0

    @staticmethod
    def _anomaly(
        ts: int, direction: Direction, raw: bytes, kind: Pop3AnomalyKind, detail: str = ""
    ) -> Anomaly:
        return Anomaly(ts_ns=ts, direction=direction, raw=raw, kind=kind, detail=detail)


def is_greeting(payload: bytes) -> bool:
    """A flow's first server bytes are a POP3 greeting: `+OK` (RFC 1939 4)."""
    return payload[:3].upper() == b"+OK"  # (a first line shorter than that holds its newline)
