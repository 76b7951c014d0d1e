"""Sans-IO SMTP dialogue parser (RFC 5321, 1870, 2920, 3030, 3207, 4954, 6152, 6531).

Feed it both directions of one connection in capture order; it hands back typed events.
Replies pair with commands first-in first-out whether or not PIPELINING was advertised
(RFC 2920 3.1: the server answers in order). Message content after DATA is dot-unstuffed
(RFC 5321 4.5.2) and streamed out in `MessageData` chunks, never buffered whole.

Tolerated deviations, each reported as an `Anomaly`:

* Bare LF line ends. `<LF>.<LF>`, `<CRLF>.<LF>` and `<LF>.<CRLF>` end DATA content too, as they
  do for several real servers; a terminator other than `<CRLF>.<CRLF>` is flagged
  (`data-terminator-not-crlf`) because the disagreement between servers on exactly this is
  "SMTP smuggling" (aiosmtpd, CVE-2023-51764..51766).
* A capture with no server bytes at all (one side only): DATA enters content at once, AUTH
  takes the responses its mechanism needs, as if every reply had been positive.
* A reply that never shows up while the client waits for it (the client's bytes pile up beyond
  MAX_LINE, or a gap swallowed the server's bytes): the positive reply is assumed.
* A reply whose last line never comes (a lone `250-`) or a line without CRLF: a client line
  sent after it, where the client waits for the whole reply (the greeting, a command that ends
  a pipelined group, any command without PIPELINING), ends it (`reply-unterminated`,
  `unterminated-line`); so does a line with another code while another command waits.
* A reply whose code fits only a later waiting command (354 DATA; 334, 235, 535 AUTH; 221 QUIT;
  220 STARTTLS) pairs with that command; the replies of those before it were lost
  (`reply-lost`). A code that fits no waiting command is flagged (`reply-code-unexpected`).
"""

from __future__ import annotations

import re
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
    receive_buffers,
    to_text,
)
from mailsniff.protocols.replies import ReplyCode, parse_enhanced, parse_line
from mailsniff.protocols.sasl import sasl_step

__all__ = [
    "AUTH_RESPONSES",
    "TRANSITIONS",
    "ClientState",
    "Command",
    "Greeting",
    "MessageData",
    "MessageEnd",
    "MessageGap",
    "Params",
    "Reply",
    "SmtpAnomalyKind",
    "SmtpEvent",
    "SmtpParser",
    "is_greeting",
    "is_hello",
    "may_be_greeting",
    "parse_path",
]


# --------------------------------------------------------------------------- anomalies


class SmtpAnomalyKind(ParserAnomalyKind):
    """The anomalies the SMTP parser reports (the module's docstring says which it tolerates)."""

    EMPTY_COMMAND = "empty-command"  # an empty line where a command belongs
    GARBAGE_COMMAND = "garbage-command"  # a client line with no command verb
    UNKNOWN_COMMAND = "unknown-command"  # a verb SMTP and its extensions do not define
    BAD_PATH = "bad-path"  # MAIL FROM / RCPT TO without a <path> that parses
    BDAT_INVALID = "bdat-invalid"  # BDAT without `n [LAST]`
    LINE_TOO_LONG = "line-too-long"  # a client line beyond limits.MAX_LINE: the rest dropped
    UNTERMINATED_LINE = "unterminated-line"  # a line without CRLF, ended by the other side
    TOO_MANY_PENDING = "too-many-pending"  # more unanswered commands than kept: oldest dropped
    RESYNC = "resync"  # after a gap: bytes skipped to the next line that parses
    DATA_TERMINATOR_NOT_CRLF = "data-terminator-not-crlf"  # content ended by a bare-LF dot
    MESSAGE_UNTERMINATED = "message-unterminated"  # the stream ended inside message content
    MALFORMED_REPLY = "malformed-reply"  # a server line that is no reply
    INVALID_REPLY_CODE = "invalid-reply-code"  # a code outside 2xx-5xx / x0x-x5x
    REPLY_CODE_MISMATCH = "reply-code-mismatch"  # a multi-line reply changing its code
    UNTERMINATED_REPLY = "unterminated-reply"  # the stream ended inside a multi-line reply
    REPLY_UNTERMINATED = "reply-unterminated"  # a multi-line reply's last line never came
    REPLY_NOT_SEEN = "reply-not-seen"  # a reply the client waited for never came: assumed
    REPLY_LOST = "reply-lost"  # a reply answering a later command: earlier ones lost
    REPLIES_LOST = "replies-lost"  # a gap in the server side swallowed waiting replies
    REPLY_CODE_UNEXPECTED = "reply-code-unexpected"  # a code that answers no waiting command
    REPLY_WITHOUT_COMMAND = "reply-without-command"  # a reply while no command waits
    END_OF_DATA_NOT_CAPTURED = "end-of-data-not-captured"  # a reply to content whose end was lost
    DATA_REFUSED_AFTER_CONTENT = "data-refused-after-content"  # content assumed, DATA refused
    CLEARTEXT_AFTER_STARTTLS = "cleartext-after-starttls"  # cleartext where TLS belongs


# --------------------------------------------------------------------------- events

#: ESMTP parameters as sent: (KEYWORD upper-cased, value or None), in order (RFC 5321 4.1.2).
Params = tuple[tuple[str, str | None], ...]


# The events below write their `__init__` out (all but the rare MessageGap): the compiled build
# compiles it (see protocols/base.py). Nothing builds an `_Event` itself: it has no `__init__`.
@mypyc_attr(allow_interpreted_subclasses=True)  # as its subclass Command must (see park.py)
@dataclass(slots=True, kw_only=True, init=False)
class _Event:
    ts_ns: int
    direction: Direction
    raw: bytes = b""


@dataclass(slots=True, kw_only=True, init=False)
class Greeting(_Event):
    """The server's first reply (RFC 5321 4.3.1), usually 220, possibly multi-line."""

    code: int
    lines: tuple[str, ...]  # text after "220 " / "220-" on each line

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        code: int,
        lines: tuple[str, ...],
        raw: bytes = b"",
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.code = code
        self.lines = lines
        self.raw = raw


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, kw_only=True, init=False)
class Command(_Event):
    """One client command line (RFC 5321 4.1.1). `verb` is upper-cased; `argument` as sent."""

    seq: int  # this command's number in the connection; replies refer to it
    verb: str
    argument: str
    address: str | None = None  # MAIL / RCPT: the path inside <...> ("" for <>)
    params: Params = ()  # MAIL / RCPT ESMTP parameters

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        seq: int,
        verb: str,
        argument: str,
        raw: bytes = b"",
        address: str | None = None,
        params: Params = (),
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.seq = seq
        self.verb = verb
        self.argument = argument
        self.raw = raw
        self.address = address
        self.params = params


@dataclass(slots=True, kw_only=True, init=False)
class Reply(_Event):
    """A complete server reply, multi-line ones joined (RFC 5321 4.2.1)."""

    code: int
    lines: tuple[str, ...]  # text after the code and separator, one per line
    enhanced: str | None  # RFC 3463 status code of the first line, e.g. "2.1.0"
    for_command: str | None  # verb of the command it answers; None when unpaired
    seq: int | None  # Command.seq / SaslStep.seq / MessageEnd.seq it answers
    ends_message: bool = False  # the reply to the end of DATA content or to BDAT ... LAST

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        code: int,
        lines: tuple[str, ...],
        enhanced: str | None,
        for_command: str | None,
        seq: int | None,
        raw: bytes = b"",
        ends_message: bool = False,
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.code = code
        self.lines = lines
        self.enhanced = enhanced
        self.for_command = for_command
        self.seq = seq
        self.raw = raw
        self.ends_message = ends_message

    @property
    def first_line(self) -> str:
        """The first line as `CODE text` (`250 Mail OK`)."""
        return _code_line(self.code, self.lines[0] if self.lines else "")

    @property
    def last_line(self) -> str:
        return _code_line(self.code, self.lines[-1] if self.lines else "")


@dataclass(slots=True, kw_only=True, init=False)
class MessageData(_Event):
    """Message content: `data` is dot-unstuffed (DATA) or the chunk itself (BDAT); `raw` as sent."""

    data: bytes

    def __init__(self, *, ts_ns: int, direction: Direction, data: bytes, raw: bytes = b"") -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.data = data
        self.raw = raw


@dataclass(slots=True, kw_only=True)
class MessageGap(_Event):
    """`length` bytes inside message content were never captured."""

    length: int


@dataclass(slots=True, kw_only=True, init=False)
class MessageEnd(_Event):
    """End of message content: the DATA terminator, the end of BDAT LAST, or the connection."""

    seq: int  # the reply to the end of the message refers to this
    body_command: str  # "DATA" or "BDAT"
    size: int  # content bytes emitted for this message (after unstuffing)
    complete: bool  # False when the connection ended (or gave up) before the terminator

    def __init__(
        self,
        *,
        ts_ns: int,
        direction: Direction,
        seq: int,
        body_command: str,
        size: int,
        complete: bool,
        raw: bytes = b"",
    ) -> None:
        self.ts_ns = ts_ns
        self.direction = direction
        self.seq = seq
        self.body_command = body_command
        self.size = size
        self.complete = complete
        self.raw = raw


SmtpEvent = (
    Greeting
    | Command
    | Reply
    | SaslStep
    | MessageData
    | MessageGap
    | MessageEnd
    | TlsStarted
    | Anomaly
    | StreamGap
)


def _code_line(code: int, text: str) -> str:
    return f"{code} {text}" if text else str(code)


# --------------------------------------------------------------------------- states


class ClientState(Enum):
    """What the next client bytes are."""

    COMMAND = "command"  # command lines (RFC 5321 4.1)
    DATA = "data"  # message content up to <CRLF>.<CRLF> (RFC 5321 4.1.1.4)
    BDAT = "bdat"  # exactly n octets of a chunk (RFC 3030 2)
    AUTH = "auth"  # SASL response lines (RFC 4954 4)
    TLS_MAYBE = "tls-maybe"  # STARTTLS sent, no server side captured: TLS if bytes look like it
    TLS = "tls"  # encrypted (RFC 3207 4); both directions only counted


#: Legal client state changes and what causes them. `SmtpParser._enter` refuses any other.
TRANSITIONS: dict[tuple[ClientState, ClientState], str] = {
    (ClientState.COMMAND, ClientState.DATA): "354 to DATA (RFC 5321 4.1.1.4)",
    (ClientState.DATA, ClientState.COMMAND): "<CRLF>.<CRLF> (RFC 5321 4.1.1.4)",
    (ClientState.COMMAND, ClientState.BDAT): "BDAT n: n octets follow at once (RFC 3030 2)",
    (ClientState.BDAT, ClientState.COMMAND): "chunk of n octets complete (RFC 3030 2)",
    (ClientState.COMMAND, ClientState.AUTH): "334 to AUTH (RFC 4954 4)",
    (ClientState.AUTH, ClientState.COMMAND): "SASL response sent (RFC 4954 4)",
    (ClientState.COMMAND, ClientState.TLS): "220 to STARTTLS (RFC 3207 4)",
    (ClientState.COMMAND, ClientState.TLS_MAYBE): "STARTTLS without a captured server",
    (ClientState.TLS_MAYBE, ClientState.TLS): "client bytes start a TLS record (RFC 8446 5.1)",
    (ClientState.TLS_MAYBE, ClientState.COMMAND): "client went on in clear",
    (ClientState.TLS, ClientState.COMMAND): (
        "first client bytes after 220 to STARTTLS are not a TLS record: a capture decrypted "
        "back to cleartext (or injected commands, CVE-2011-0411): parsed as commands"
    ),
}

#: SASL responses a mechanism takes after the AUTH command without an initial response,
#: used only when no server reply is captured (RFC 4954 4; LOGIN: username then password).
AUTH_RESPONSES: dict[str, int] = {"LOGIN": 2, "PLAIN": 1, "CRAM-MD5": 1, "XOAUTH2": 1, "NTLM": 2}

_KNOWN_VERBS: Final = frozenset(
    {
        "HELO", "EHLO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "VRFY", "EXPN", "HELP",
        "NOOP", "QUIT", "AUTH", "STARTTLS", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML",
        "XCLIENT", "XFORWARD", "XEXCH50", "X-ANONYMOUSTLS", "X-EXPS", "X-LINK2STATE",
    }
)  # fmt: skip

# RFC 5321 4.1.1: verbs are alphabetic keywords; extensions use letters, digits and "-".
_VERB: Final = re.compile(rb"^[A-Za-z][A-Za-z0-9-]{0,19}$")
# RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CRLF
#             chunk-size = 1*DIGIT; end-marker = "LAST"
_BDAT: Final = re.compile(r"^(\d{1,18})(?:\s+(LAST))?\s*$", re.IGNORECASE)
#: Commands that end a pipelined group: the client waits for their reply (RFC 2920 3.1; RFC
#: 4954 4 AUTH, RFC 3207 4 STARTTLS).
_ENDS_GROUP: Final = frozenset(
    {"EHLO", "HELO", "LHLO", "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP", "AUTH", "STARTTLS"}
)
#: Reply codes that answer only some commands (RFC 5321 4.3.2, RFC 4954 4 and 6, RFC 3207 4),
#: by the verb of the command they answer (the end of message content takes none of them).
#: Any other code may answer any command.
_ANSWERS_ONLY: dict[int, frozenset[str]] = {
    ReplyCode.START_MAIL_INPUT: frozenset({"DATA", "XEXCH50"}),  # Exchange: "354 Send binary"
    ReplyCode.AUTH_CHALLENGE: frozenset({"AUTH"}),
    ReplyCode.AUTH_SUCCEEDED: frozenset({"AUTH"}),
    ReplyCode.AUTH_FAILED: frozenset({"AUTH"}),
    ReplyCode.CLOSING: frozenset({"QUIT"}),
    # a new greeting after XCLIENT (Postfix), or the role reversal of TURN / ATRN (RFC 2645)
    ReplyCode.SERVICE_READY: frozenset({"STARTTLS", "XCLIENT", "TURN", "ATRN"}),
}
_ENDS_CHUNKING: Final = frozenset(
    {"DATA", "RSET", "MAIL", "HELO", "EHLO", "LHLO", "QUIT", "STARTTLS"}
)
_TLS_RECORD_START: Final = 0x16  # handshake record (RFC 8446 5.1)


def _path_end(text: str) -> int:
    """Where the `>` closing the path `text` opens stands, past quoted local parts; -1 if none.

    RFC 5321 4.1.2: a Local-part may be a Quoted-string, whose qtextSMTP includes `>` and whose
    quoted-pairSMTP escapes any printable character, so `<"a>b"@x>` is one address. A quote
    that is never closed falls back to the first `>`, as a server would most likely read it.
    """
    quoted = False
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ">":
            return i
        i += 1
    return text.find(">")


def parse_path(argument: str, keyword: str) -> tuple[str | None, Params]:
    """Split a MAIL/RCPT argument into the address and its ESMTP parameters.

    RFC 5321 4.1.2: Mail-parameters = esmtp-param *(SP esmtp-param);
    esmtp-param = esmtp-keyword ["=" esmtp-value]. Tolerates what real clients send: a space
    after the colon, a missing `<...>`, lower case. Returns (None, ()) when `keyword:` is missing.

    Args:
        argument: the text after the verb, e.g. `FROM:<a@b> SIZE=10`.
        keyword: "FROM" or "TO".
    """
    head, sep, rest = argument.partition(":")
    if not sep or head.strip().upper() != keyword:
        return None, ()
    rest = rest.strip()
    if rest.startswith("<"):
        end = _path_end(rest) if '"' in rest else rest.find(">")
        if end < 0:
            address, tail = rest[1:], ""
        else:
            address, tail = rest[1:end], rest[end + 1 :]
    else:
        address, _, tail = rest.partition(" ")
        address = address.rstrip(">")
    # A source route "@a,@b:user@c" (RFC 5321 4.1.2, obsolete) leaves the mailbox after ":".
    if address.startswith("@") and ":" in address:
        address = address.rsplit(":", 1)[1]
    params: list[tuple[str, str | None]] = []
    for token in tail.split():
        key, eq, value = token.partition("=")
        params.append((key.upper(), value if eq else None))
    return address, tuple(params)


# --------------------------------------------------------------------------- parser


def _take_line(buf: ReceiveBuffer) -> Line | None:
    """The next line, cut at MAX_LINE, without losing the lines buffered after an overlong one."""
    i = buf.find(b"\n")
    if i <= MAX_LINE + 1:
        return buf.take_line()  # fits, or no newline buffered yet (all of it is this line)
    chunk = buf.take_bytes(i + 1)
    ending = b"\r\n" if chunk.endswith(b"\r\n") else b"\n"
    body = chunk[: -len(ending)]
    return Line(body[:MAX_LINE], ending, overlong=len(body) - MAX_LINE)


class _Await(Enum):
    """What a pending reply will mean."""

    GENERIC = "generic"
    DATA = "data"  # 354 starts content
    END = "end"  # reply to the end of message content
    AUTH = "auth"  # 334 asks for a SASL response
    STARTTLS = "starttls"  # 220 starts TLS


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, init=False)
class _Pending:
    seq: int
    verb: str | None
    kind: _Await = _Await.GENERIC
    ends_message: bool = False
    assumed: bool = False  # the positive reply was already assumed (no server side, or lost)

    def __init__(
        self,
        seq: int,
        verb: str | None,
        kind: _Await = _Await.GENERIC,
        ends_message: bool = False,
        assumed: bool = False,
    ) -> None:
        self.seq = seq
        self.verb = verb
        self.kind = kind
        self.ends_message = ends_message
        self.assumed = assumed

    @property
    def barrier(self) -> bool:
        """The client waits for this reply before sending more (RFC 2920 3.1)."""
        return self.kind in (_Await.DATA, _Await.AUTH, _Await.STARTTLS) and not self.assumed


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, init=False)
class _Reassembly:
    """A reply being collected line by line."""

    code: int = 0
    lines: list[str] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)

    def __init__(
        self, code: int = 0, lines: list[str] | None = None, raw: bytearray | None = None
    ) -> None:
        self.code = code
        self.lines = [] if lines is None else lines
        self.raw = bytearray() if raw is None else raw


#: Shared per-direction tables, replaced by a connection's own copy on its first write (after a
#: gap, or when TLS starts): most connections never need one.
_NO_RESYNC: dict[Direction, bool] = {CLIENT: False, SERVER: False}
_NO_COUNT: dict[Direction, int] = {CLIENT: 0, SERVER: 0}
_NO_REST: dict[Direction, bytes] = {}  # shared, never written: `_start_tls` makes a fresh one
_NO_DIRECTIONS: frozenset[Direction] = frozenset()


class SmtpParser:
    """One SMTP connection, both directions. Never raises on captured bytes.

    Compact: slots, lists rather than deques, and per-direction tables shared until a connection
    writes to them, because a flood of open connections keeps one parser each.
    """

    __slots__ = (
        "_buf",
        "_resync",
        "_skipped",
        "_state",
        "_pending",
        "_seq",
        "_server_seen",
        "_greeted",
        "_reply",
        "_partial_since",
        "_pipelining",
        "_marks",
        "_c_in",
        "_closed",
        "_at_line_start",
        "_prev_crlf",
        "_cr_pending",
        "_gap_edge",
        "_body_seq",
        "_body_verb",
        "_body_size",
        "_chunk_left",
        "_chunk_last",
        "_bdat_open",
        "_tls_unchecked",
        "_mechanism",
        "_auth_step",
        "_auth_left",
        "encrypted_bytes",
        "_tls_rest",
        "_auth_initial",
    )

    def __init__(self) -> None:
        self._buf = receive_buffers()
        self._resync = _NO_RESYNC  # copied by _start_resync before any write
        self._skipped = _NO_COUNT
        self._state = ClientState.COMMAND
        self._pending: list[_Pending] = []
        self._seq = 0
        self._server_seen = False
        self._greeted = False
        self._reply: _Reassembly | None = None
        # Client stream offset when the server's unfinished line or reply began (None: none).
        self._partial_since: int | None = None
        self._pipelining: bool | None = None  # PIPELINING offered (None: no EHLO reply seen)
        # Capture time of client bytes still buffered: (end offset, ts) per feed, so that
        # bytes held while the client waits for a reply keep their own time.
        self._marks: list[tuple[int, int]] = []
        self._c_in = 0
        self._closed = False
        # DATA content
        self._at_line_start = True
        self._prev_crlf = True
        self._cr_pending = False
        self._gap_edge = False  # content resumes after a gap: line start unknown
        self._body_seq = 0
        self._body_verb = "DATA"
        self._body_size = 0
        # BDAT chunk
        self._chunk_left = 0
        self._chunk_last = False
        self._bdat_open = False  # BDAT chunks seen, LAST not yet (RFC 3030 2)
        # Directions whose first bytes after STARTTLS are still to see.
        self._tls_unchecked: frozenset[Direction] = _NO_DIRECTIONS
        # AUTH
        self._mechanism = ""
        self._auth_initial = False  # a response given on the AUTH line itself
        self._auth_left = 0  # responses still expected when no server side is captured
        #: Bytes seen after TLS started, per direction (counted, never parsed; copied when TLS
        #: starts).
        self.encrypted_bytes = _NO_COUNT
        # Bytes each direction had buffered past the STARTTLS reply, for `tls_handover`.
        self._tls_rest: dict[Direction, bytes] = _NO_REST

    # ------------------------------------------------------------------ public API

    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[SmtpEvent]:
        """Bytes of one direction, in stream order; returns the events they complete.

        Args:
            ts_ns: capture time of the bytes (ns since the epoch).
            direction: who sent them.
            data: the bytes.

        Returns:
            The events, in order.
        """
        out: list[SmtpEvent] = []
        if self._closed or not data:
            return out
        if self._state is ClientState.TLS:
            if (
                direction is CLIENT
                and direction in self._tls_unchecked
                and data[0] != _TLS_RECORD_START
            ):
                # Cleartext where the TLS handshake should be: a decrypted capture (Arkime's
                # smtp-decrypted) or injection. Say so, and read it for what it says.
                self._tls_unchecked = _NO_DIRECTIONS
                detail = "client bytes after STARTTLS are cleartext: parsed as commands"
                self._anomaly(
                    ts_ns, direction, SmtpAnomalyKind.CLEARTEXT_AFTER_STARTTLS, detail, out
                )
                self._enter(ClientState.COMMAND)
            else:
                self._encrypted(ts_ns, direction, data, out)
                return out
        buf = self._buf[direction]
        if direction is SERVER:
            self._server_seen = True
            buf.append(data)
            self._server(ts_ns, out)
            self._client(out)
        else:
            self._client_append(ts_ns, data)
            self._client(out, fresh=True)
        return out

    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[SmtpEvent]:
        """`length` bytes of `direction` were lost (0: unknown loss before the first byte).

        The partial line is dropped and parsing resumes at the next line that looks like a
        command or reply; inside message content the gap is noted and the terminator sought.
        """
        out: list[SmtpEvent] = []
        if self._closed:
            return out
        out.append(StreamGap(ts_ns=ts_ns, direction=direction, length=length))
        if self._state is ClientState.TLS:
            self.encrypted_bytes[direction] += length
            self._tls_unchecked = self._tls_unchecked - {direction}
            return out
        if direction is SERVER:
            self._server_gap(ts_ns, length, out)
            self._client(out)
        else:
            self._client_gap(ts_ns, length, out)
        return out

    def close(self, ts_ns: int) -> list[SmtpEvent]:
        """The connection ended: flush partial lines and an unterminated message."""
        out: list[SmtpEvent] = []
        if self._closed:
            return out
        self._closed = True
        if self._state is ClientState.TLS:
            return out
        # Unterminated last lines are still lines (a telnet user closing after "QUIT").
        sbuf = self._buf[SERVER]
        if len(sbuf):
            sbuf.append(b"\n")
            self._anomaly(ts_ns, SERVER, SmtpAnomalyKind.UNTERMINATED_LINE, "server", out)
            self._server(ts_ns, out)
        if self._reply is not None:
            r, self._reply = self._reply, None
            self._anomaly(ts_ns, SERVER, SmtpAnomalyKind.UNTERMINATED_REPLY, str(r.code), out)
            self._on_reply(ts_ns, r.code, tuple(r.lines), bytes(r.raw), out)
        ts = ts_ns
        cbuf = self._buf[CLIENT]
        self._client(out)
        for _ in range(len(self._pending)):
            if not (len(cbuf) and self._held()):
                break
            self._release(ts, "connection closed", out)
            self._client(out)
        if self._state is ClientState.DATA:
            rest = cbuf.take_rest()
            if rest:
                self._emit_content(ts_ns, rest, rest, out)
            self._end_message(ts_ns, b"", False, out)
        elif self._state is ClientState.BDAT:
            self._end_message(ts_ns, b"", False, out)
        elif len(cbuf):
            self._client_append(ts_ns, b"\n")
            self._anomaly(ts_ns, CLIENT, SmtpAnomalyKind.UNTERMINATED_LINE, "client", out)
            self._client(out)
        if self._bdat_open and self._state is ClientState.COMMAND:
            self._end_message(ts_ns, b"", False, out)
        return out

    @property
    def tls(self) -> bool:
        return self._state is ClientState.TLS

    def tls_handover(self) -> dict[Direction, bytes]:
        """After `TlsStarted`, for a layer that decrypts the TLS: the bytes each direction had
        buffered past the STARTTLS reply (the first TLS records, not parsed), handed over once."""
        rest, self._tls_rest = self._tls_rest, _NO_REST
        return rest

    def resume_plaintext(self) -> None:
        """The bytes fed from now on are the dialogue inside TLS, decrypted by a layer below:
        parse them as commands and replies (RFC 3207 4.2: the client starts over with EHLO)."""
        if self._state is ClientState.TLS:
            self._tls_unchecked = _NO_DIRECTIONS
            self._enter(ClientState.COMMAND)

    # ------------------------------------------------------------------ helpers

    def _enter(self, state: ClientState) -> None:
        if state is not self._state:
            if (self._state, state) not in TRANSITIONS:  # our bug, not the peer's
                raise AssertionError(f"SMTP parser: {self._state} -> {state}")
            self._state = state

    def _anomaly(
        self, ts: int, direction: Direction, kind: SmtpAnomalyKind, detail: str,
        out: list[SmtpEvent], raw: bytes = b"",
    ) -> None:  # fmt: skip
        out.append(Anomaly(ts_ns=ts, direction=direction, raw=raw, kind=kind, detail=detail))

    def _push(self, ts: int, pending: _Pending, out: list[SmtpEvent]) -> None:
        if len(self._pending) >= MAX_PENDING_COMMANDS:
            dropped = self._pending.pop(0)
            self._anomaly(ts, CLIENT, SmtpAnomalyKind.TOO_MANY_PENDING, str(dropped.verb), out)
        self._pending.append(pending)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _held(self) -> bool:
        """The client is waiting for a reply, so its further bytes wait too (RFC 2920 3.1)."""
        # Nothing is parsed after a barrier while it is held, so it can only be the last entry.
        return self._server_seen and bool(self._pending) and self._pending[-1].barrier

    # ------------------------------------------------------------------ client side

    def _client_append(self, ts: int, data: bytes) -> None:
        self._c_in += len(data)
        self._marks.append((self._c_in, ts))
        self._buf[CLIENT].append(data)

    def _client_ts(self, last: bool = True) -> int:
        """Capture time of the last client byte consumed (`last`) or of the next one."""
        offset = self._c_in - len(self._buf[CLIENT]) - (1 if last else 0)
        marks = self._marks
        done = 0
        while len(marks) - done > 1 and marks[done][0] <= offset:
            done += 1
        if done:
            del marks[:done]
        return marks[0][1] if marks else 0

    def _went_on(self) -> bool:
        """The client sent a line after the server's unfinished reply began, at a point where
        it would only do so once the reply was over (RFC 2920 3.1)."""
        since = self._partial_since
        if since is None or not (self._reply is not None or len(self._buf[SERVER])):
            return False
        buf = self._buf[CLIENT]
        start = self._c_in - len(buf)
        if self._held():  # any line end among the bytes that came after
            new_line = buf.peek(len(buf)).find(b"\n", max(since - start, 0)) >= 0
        else:
            i = buf.find(b"\n")
            new_line = i >= 0 and start + i >= since
        return new_line and self._client_waits()

    def _client(self, out: list[SmtpEvent], fresh: bool = False) -> None:
        """Parse buffered client bytes; `fresh`: new client bytes just arrived."""
        buf = self._buf[CLIENT]
        while len(buf):
            ts = self._client_ts(last=False)
            state = self._state
            if state is ClientState.TLS:
                self._encrypted(ts, CLIENT, buf.take_rest(), out)
                break
            if state is ClientState.DATA:
                if not self._content(ts, out):
                    break
                continue
            if state is ClientState.BDAT:
                self._chunk(ts, out)
                continue
            if state is ClientState.TLS_MAYBE:
                if buf.peek(1)[0] == _TLS_RECORD_START:
                    self._start_tls(ts, out)
                else:
                    self._enter(ClientState.COMMAND)
                continue
            if fresh and self._went_on():
                self._end_partial(ts, out)
                continue
            if self._held():
                if len(buf) > MAX_LINE:
                    self._release(ts, "client sent more than a line while waiting", out)
                    continue
                break
            line = _take_line(buf)
            if line is None:
                break
            ts = self._client_ts()
            if line.overlong:
                self._anomaly(
                    ts,
                    CLIENT,
                    SmtpAnomalyKind.LINE_TOO_LONG,
                    f"{line.overlong} bytes dropped",
                    out,
                )
            if state is ClientState.AUTH:
                self._on_sasl_line(ts, line, out)
            else:
                self._on_command_line(ts, line, out)

    def _client_gap(self, ts: int, length: int, out: list[SmtpEvent]) -> None:
        buf = self._buf[CLIENT]
        if self._state is ClientState.DATA:
            rest = buf.take_rest()
            if rest:
                self._emit_content(ts, rest, rest, out)
            out.append(MessageGap(ts_ns=ts, direction=CLIENT, length=length))
            # The lost bytes may have ended a line: a terminator right after the gap still
            # counts, but a dot there is not taken as stuffing.
            self._at_line_start = True
            self._gap_edge = True
            self._prev_crlf = True
            self._cr_pending = False
            return
        if self._state is ClientState.BDAT:
            lost = min(length, self._chunk_left)
            self._chunk_left -= lost
            out.append(MessageGap(ts_ns=ts, direction=CLIENT, length=lost))
            if self._chunk_left == 0:
                self._finish_chunk(ts, out)
                if length > lost:
                    self._start_resync(CLIENT)
            return
        if self._state in (ClientState.AUTH, ClientState.TLS_MAYBE):
            self._enter(ClientState.COMMAND)
        self._start_resync(CLIENT)

    def _start_resync(self, direction: Direction) -> None:
        self._buf[direction].clear()
        if self._resync is _NO_RESYNC:
            self._resync, self._skipped = dict(_NO_RESYNC), dict(_NO_COUNT)
        self._resync[direction] = True
        self._skipped[direction] = 0

    def _on_command_line(self, ts: int, line: Line, out: list[SmtpEvent]) -> None:
        raw = line.raw
        wire = raw + line.ending
        verb_b, _, arg_b = raw.strip(b" \t").partition(b" ")
        verb = verb_b.decode("ascii", "replace").upper() if _VERB.match(verb_b) else None
        if self._resync[CLIENT]:
            # After a gap, trust only a line that starts with a command we know.
            if verb not in _KNOWN_VERBS:
                self._skipped[CLIENT] += line.size
                return
            self._resync[CLIENT] = False
            if self._skipped[CLIENT]:
                detail = f"{self._skipped[CLIENT]} client bytes skipped to resync"
                self._anomaly(ts, CLIENT, SmtpAnomalyKind.RESYNC, detail, out)
        seq = self._next_seq()
        if verb is None:
            kind = (
                SmtpAnomalyKind.EMPTY_COMMAND
                if not raw.strip()
                else SmtpAnomalyKind.GARBAGE_COMMAND
            )
            self._anomaly(ts, CLIENT, kind, repr(raw[:40]), out, raw=wire)
            self._push(ts, _Pending(seq, None), out)
            return
        argument = to_text(arg_b.strip(b" \t"))
        if verb not in _KNOWN_VERBS:
            self._anomaly(ts, CLIENT, SmtpAnomalyKind.UNKNOWN_COMMAND, verb, out)
        address: str | None = None
        params: Params = ()
        if verb in ("MAIL", "RCPT"):
            address, params = parse_path(argument, "FROM" if verb == "MAIL" else "TO")
            if address is None:
                self._anomaly(ts, CLIENT, SmtpAnomalyKind.BAD_PATH, f"{verb} {argument}"[:80], out)
        out.append(
            Command(
                ts_ns=ts, direction=CLIENT, raw=wire, seq=seq, verb=verb,
                argument=argument, address=address, params=params,
            )
        )  # fmt: skip
        if self._bdat_open and verb in _ENDS_CHUNKING:
            # RFC 3030 2: a message sent in chunks ends with BDAT LAST; DATA, RSET, a new
            # MAIL or EHLO abandon it (Zeek: smtp_bdat_remaining_at_end_data).
            self._end_message(ts, b"", False, out)
        match verb:
            case "DATA":
                self._on_data(ts, seq, out)
            case "BDAT":
                self._on_bdat(ts, seq, argument, out)
            case "AUTH":
                self._on_auth(ts, seq, argument, out)
            case "STARTTLS":
                self._on_starttls(ts, seq, out)
            case _:
                self._push(ts, _Pending(seq, verb), out)

    def _on_data(self, ts: int, seq: int, out: list[SmtpEvent]) -> None:
        # RFC 5321 4.1.1.4: content follows only after 354. With no server side captured at
        # all, assume the 354 (a one-side capture has nothing else to go on).
        assumed = not self._server_seen
        self._push(ts, _Pending(seq, "DATA", _Await.DATA, assumed=assumed), out)
        self._body_seq = seq
        if assumed:
            self._begin_content("DATA")

    def _begin_content(self, verb: str) -> None:
        self._body_verb = verb
        self._body_size = 0
        self._at_line_start = True
        self._prev_crlf = True
        self._cr_pending = False
        self._gap_edge = False
        self._enter(ClientState.DATA)

    def _on_bdat(self, ts: int, seq: int, argument: str, out: list[SmtpEvent]) -> None:
        # RFC 3030 2: the chunk follows the command at once, whatever the reply; the server
        # reads it either way. An argument that is not `n [LAST]` leaves no chunk to read.
        m = _BDAT.match(argument)
        if m is None:
            self._anomaly(ts, CLIENT, SmtpAnomalyKind.BDAT_INVALID, argument[:80], out)
            self._push(ts, _Pending(seq, "BDAT"), out)
            return
        size, last = int(m.group(1)), m.group(2) is not None
        self._push(ts, _Pending(seq, "BDAT", _Await.END if last else _Await.GENERIC, last), out)
        if not self._bdat_open:
            self._body_size = 0
            self._bdat_open = True
        self._body_verb = "BDAT"
        self._body_seq = seq
        self._chunk_left = size
        self._chunk_last = last
        self._enter(ClientState.BDAT)
        if size == 0:
            self._finish_chunk(ts, out)

    def _chunk(self, ts: int, out: list[SmtpEvent]) -> None:
        data = self._buf[CLIENT].take_bytes(self._chunk_left)
        self._chunk_left -= len(data)
        if data:
            self._emit_content(ts, data, data, out)
        if self._chunk_left == 0:
            self._finish_chunk(self._client_ts(), out)

    def _finish_chunk(self, ts: int, out: list[SmtpEvent]) -> None:
        self._enter(ClientState.COMMAND)
        if self._chunk_last:
            out.append(
                MessageEnd(
                    ts_ns=ts, direction=CLIENT, seq=self._body_seq, body_command="BDAT",
                    size=self._body_size, complete=True,
                )
            )  # fmt: skip
            self._bdat_open = False

    def _on_auth(self, ts: int, seq: int, argument: str, out: list[SmtpEvent]) -> None:
        # RFC 4954 4: AUTH mechanism [initial-response]; "=" is an empty initial response.
        parts = argument.split()
        self._mechanism = parts[0].upper() if parts else ""
        self._auth_initial = True
        assumed = not self._server_seen
        self._push(ts, _Pending(seq, "AUTH", _Await.AUTH, assumed=assumed), out)
        if len(parts) > 1:
            self._emit_sasl(ts, seq, parts[1].encode("latin-1", "replace"), b"", out)
        self._auth_initial = False
        if assumed:
            need = AUTH_RESPONSES.get(self._mechanism, 1) - (1 if len(parts) > 1 else 0)
            self._auth_left = max(need, 0)
            if self._auth_left:
                self._enter(ClientState.AUTH)

    def _emit_sasl(
        self, ts: int, seq: int, blob: bytes, ending: bytes, out: list[SmtpEvent]
    ) -> None:
        out.append(
            sasl_step(
                ts, CLIENT, blob + ending, blob, self._mechanism,
                initial=self._auth_initial, seq=seq, empty_is_base64=False,
            )
        )  # fmt: skip

    def _on_sasl_line(self, ts: int, line: Line, out: list[SmtpEvent]) -> None:
        seq = self._next_seq()
        self._emit_sasl(ts, seq, line.raw, line.ending, out)
        cancelled = line.raw.strip() == b"*"
        if self._server_seen:
            self._push(ts, _Pending(seq, "AUTH", _Await.AUTH), out)
            self._enter(ClientState.COMMAND)
            return
        self._push(ts, _Pending(seq, "AUTH", _Await.AUTH, assumed=True), out)
        self._auth_left -= 1
        if self._auth_left <= 0 or cancelled:
            self._enter(ClientState.COMMAND)

    def _on_starttls(self, ts: int, seq: int, out: list[SmtpEvent]) -> None:
        assumed = not self._server_seen
        self._push(ts, _Pending(seq, "STARTTLS", _Await.STARTTLS, assumed=assumed), out)
        if assumed:
            self._enter(ClientState.TLS_MAYBE)

    def _start_tls(self, ts: int, out: list[SmtpEvent]) -> None:
        self._enter(ClientState.TLS)
        out.append(TlsStarted(ts_ns=ts, direction=SERVER))
        self._tls_unchecked = frozenset((CLIENT, SERVER))
        if self.encrypted_bytes is _NO_COUNT:
            self.encrypted_bytes = dict(_NO_COUNT)
        self._tls_rest = {}
        for direction, buf in self._buf.items():
            rest = buf.take_rest()
            if rest:
                self._tls_rest[direction] = rest
            self._encrypted(ts, direction, rest, out)
        self._pending.clear()
        self._reply = None
        self._partial_since = None

    def _encrypted(self, ts: int, direction: Direction, data: bytes, out: list[SmtpEvent]) -> None:
        if not data:
            return
        self.encrypted_bytes[direction] += len(data)
        if direction in self._tls_unchecked:
            self._tls_unchecked = self._tls_unchecked - {direction}
            if data[0] != _TLS_RECORD_START:
                # Cleartext sent after STARTTLS but before the handshake would be taken as
                # if it came through TLS by a vulnerable peer (CVE-2011-0411 and kin).
                detail = f"{direction} bytes after STARTTLS do not start a TLS record"
                self._anomaly(ts, direction, SmtpAnomalyKind.CLEARTEXT_AFTER_STARTTLS, detail, out)

    def _release(self, ts: int, why: str, out: list[SmtpEvent]) -> None:
        """Stop waiting for a reply that is not coming: assume it was the positive one."""
        for p in self._pending:
            if p.barrier:
                self._anomaly(ts, SERVER, SmtpAnomalyKind.REPLY_NOT_SEEN, f"{p.verb}: {why}", out)
                self._assume_positive(ts, p, out)
                return

    def _assume_positive(self, ts: int, p: _Pending, out: list[SmtpEvent]) -> None:
        p.assumed = True
        if self._state is not ClientState.COMMAND:
            return
        match p.kind:
            case _Await.DATA:
                self._begin_content("DATA")
            case _Await.AUTH:
                self._auth_left = 1
                self._enter(ClientState.AUTH)
            case _Await.STARTTLS:
                self._enter(ClientState.TLS_MAYBE)
            case _:
                pass

    # ------------------------------------------------------------------ message content

    def _content(self, ts: int, out: list[SmtpEvent]) -> bool:
        """Consume DATA content (RFC 5321 4.5.2); False when more bytes are needed."""
        buf = self._buf[CLIENT]
        data = bytearray()
        raw = bytearray()
        while len(buf):
            if self._at_line_start:
                head = buf.peek(3)
                if head[:1] == b".":
                    if len(head) < 2 or head[1:2] == b"\r" and len(head) < 3:
                        break  # need the bytes after the dot to tell what it is
                    if head[1:2] == b"\n" or head[1:3] == b"\r\n":
                        term = buf.take_bytes(2 if head[1:2] == b"\n" else 3)
                        if raw:
                            self._emit_content(ts, bytes(data), bytes(raw), out)
                        ts = self._client_ts()
                        if not (self._prev_crlf and term.endswith(b"\r\n")):
                            self._anomaly(
                                ts,
                                CLIENT,
                                SmtpAnomalyKind.DATA_TERMINATOR_NOT_CRLF,
                                repr(term),
                                out,
                            )
                        self._end_message(ts, term, True, out)
                        return True
                    if not self._gap_edge:
                        # RFC 5321 4.5.2: a leading dot on any other line was doubled; drop one.
                        raw += buf.take_bytes(1)
                        self._at_line_start = False
                        continue
                    self._at_line_start = False  # after a gap the dot may be mid-line: keep it
                self._gap_edge = False
            j = buf.find_dot_line()
            if j < 0:
                piece = buf.take_rest()
                self._note_line_end(piece)
            else:
                piece = buf.take_bytes(j + 1)
                self._note_line_end(piece)
            data += piece
            raw += piece
        if raw:
            self._emit_content(ts, bytes(data), bytes(raw), out)
        return False

    def _note_line_end(self, piece: bytes) -> None:
        if piece.endswith(b"\n"):
            self._at_line_start = True
            if len(piece) >= 2:
                self._prev_crlf = piece[-2] == 0x0D
            else:
                self._prev_crlf = self._cr_pending
            self._cr_pending = False
        elif piece:
            self._at_line_start = False
            self._cr_pending = piece.endswith(b"\r")

    def _emit_content(self, ts: int, data: bytes, raw: bytes, out: list[SmtpEvent]) -> None:
        self._body_size += len(data)
        out.append(MessageData(ts_ns=ts, direction=CLIENT, raw=raw, data=data))

    def _end_message(self, ts: int, term: bytes, complete: bool, out: list[SmtpEvent]) -> None:
        verb = self._body_verb
        out.append(
            MessageEnd(
                ts_ns=ts, direction=CLIENT, raw=term, seq=self._body_seq,
                body_command=verb, size=self._body_size, complete=complete,
            )
        )  # fmt: skip
        self._bdat_open = False
        if verb == "DATA" and self._state is ClientState.DATA:
            self._enter(ClientState.COMMAND)
            if complete:
                self._push(ts, _Pending(self._body_seq, "DATA", _Await.END, True), out)
        elif verb == "BDAT" and self._state is ClientState.BDAT:
            self._enter(ClientState.COMMAND)
        if not complete:
            self._anomaly(ts, CLIENT, SmtpAnomalyKind.MESSAGE_UNTERMINATED, verb, out)

    # ------------------------------------------------------------------ server side

    def _server(self, ts: int, out: list[SmtpEvent]) -> None:
        buf = self._buf[SERVER]
        while self._state is not ClientState.TLS:
            line = _take_line(buf)
            if line is None:
                break
            if not self._server_line(ts, line, out):
                continue
            self._partial_since = None
            if len(self._buf[CLIENT]):
                # A reply may release client bytes that were waiting for it (RFC 2920 3.1);
                # they come before the next reply, which may answer them.
                self._client(out)
        self._note_partial()

    def _note_partial(self) -> None:
        """Remember where the client stream stood when the server's unfinished reply began."""
        if self._reply is None and not len(self._buf[SERVER]):
            self._partial_since = None
        elif self._partial_since is None:
            self._partial_since = self._c_in

    def _server_line(self, ts: int, line: Line, out: list[SmtpEvent]) -> bool:
        """One server line; True when it completed a reply."""
        m = parse_line(line.raw)
        if self._resync[SERVER]:
            if m is None:
                self._skipped[SERVER] += line.size
                return False
            self._resync[SERVER] = False
            if self._skipped[SERVER]:
                detail = f"{self._skipped[SERVER]} server bytes skipped to resync"
                self._anomaly(ts, SERVER, SmtpAnomalyKind.RESYNC, detail, out)
        if m is None:
            self._anomaly(
                ts, SERVER, SmtpAnomalyKind.MALFORMED_REPLY, repr(line.raw[:40]), out,
                raw=line.raw + line.ending,
            )  # fmt: skip
            return False
        code, text = m.code, m.text
        r = self._reply
        if r is not None and r.code != code:
            if len(self._pending) >= (2 if self._greeted else 1):
                # RFC 5321 4.2.1: every line of a reply has the same code. A new code while
                # another command waits is the next reply: the last line of this one never came.
                self._reply = None
                self._cut_reply(ts, r, f"{r.code} ended by a {code} line", out)
                r = None
            else:
                self._anomaly(
                    ts,
                    SERVER,
                    SmtpAnomalyKind.REPLY_CODE_MISMATCH,
                    f"{r.code} then {code}",
                    out,
                )
        if r is None:
            r = self._reply = _Reassembly(code)
        if len(r.raw) < MAX_LINE:  # a reply's kept lines are bounded as one line is
            r.lines.append(text)
            r.raw += line.raw + line.ending
        if m.more and len(r.lines) < 1000:
            return False
        self._reply = None
        self._on_reply(ts, r.code, tuple(r.lines), bytes(r.raw), out)
        return True

    def _cut_reply(self, ts: int, r: _Reassembly, why: str, out: list[SmtpEvent]) -> None:
        """A multi-line reply whose final line never came: take it as complete."""
        self._anomaly(ts, SERVER, SmtpAnomalyKind.REPLY_UNTERMINATED, why, out)
        self._on_reply(ts, r.code, tuple(r.lines), bytes(r.raw), out)

    def _client_waits(self) -> bool:
        """The client sends nothing more until the server's reply is complete (RFC 2920 3.1):
        it waits for the greeting, a command that ends a pipelined group, or for every reply
        when PIPELINING was not offered."""
        if not self._pending:
            return not self._greeted
        p = self._pending[-1]
        if p.kind is _Await.END:
            return self._pipelining is False
        return p.barrier or p.verb in _ENDS_GROUP or self._pipelining is False

    def _end_partial(self, ts: int, out: list[SmtpEvent]) -> None:
        """The client went on: the server's unfinished line or reply was all it got."""
        sbuf = self._buf[SERVER]
        if len(sbuf):
            rest = sbuf.take_rest()
            if self._resync[SERVER]:
                self._skipped[SERVER] += len(rest)
            else:
                detail = "server line without CRLF, ended by the client's next bytes"
                self._anomaly(ts, SERVER, SmtpAnomalyKind.UNTERMINATED_LINE, detail, out)
                self._server_line(ts, Line(rest.removesuffix(b"\r"), b""), out)
        r = self._reply
        if r is not None:
            self._reply = None
            self._cut_reply(ts, r, f"{r.code}: no last line before the client's next bytes", out)
        self._partial_since = None

    def _server_gap(self, ts: int, length: int, out: list[SmtpEvent]) -> None:
        self._reply = None
        self._partial_since = None
        self._start_resync(SERVER)
        if length == 0 and not self._server_seen:
            self._greeted = True  # capture began mid-connection: no greeting to expect
            return
        # Replies inside the lost bytes cannot be told apart: forget what was waiting, and
        # assume the positive answer where the client's next bytes depend on it.
        if self._pending:
            self._anomaly(
                ts,
                SERVER,
                SmtpAnomalyKind.REPLIES_LOST,
                f"{len(self._pending)} unanswered",
                out,
            )
        for p in list(self._pending):
            if p.barrier:
                self._assume_positive(ts, p, out)
        self._pending.clear()
        self._greeted = True

    @staticmethod
    def _fits(p: _Pending, code: int) -> bool:
        """Whether a reply with `code` can answer `p` (see _ANSWERS_ONLY)."""
        only = _ANSWERS_ONLY.get(code)
        if only is None or p.verb is None or p.verb not in _KNOWN_VERBS:
            return True
        if p.kind is _Await.END:  # the end of message content is answered 2xx/4xx/5xx
            return False
        return p.verb in only

    def _pair(self, ts: int, code: int, out: list[SmtpEvent]) -> _Pending:
        """The waiting command a reply answers: the oldest, unless its code only fits a later
        one (a 354 while a RCPT and the DATA wait): then the replies before it were lost."""
        pending = self._pending
        if not self._fits(pending[0], code):
            for i, q in enumerate(pending):
                if i and self._fits(q, code) and q.verb in _ANSWERS_ONLY[code]:
                    for _ in range(i):
                        lost = pending.pop(0)
                        detail = f"{lost.verb}: no reply before the {code} answering {q.verb}"
                        self._anomaly(ts, SERVER, SmtpAnomalyKind.REPLY_LOST, detail, out)
                    break
            else:
                detail = f"{code} does not answer {pending[0].verb}"
                self._anomaly(ts, SERVER, SmtpAnomalyKind.REPLY_CODE_UNEXPECTED, detail, out)
        return pending.pop(0)

    def _on_reply(
        self, ts: int, code: int, lines: tuple[str, ...], raw: bytes, out: list[SmtpEvent]
    ) -> None:
        if not self._greeted:
            self._greeted = True
            # RFC 5321 4.3.1: 220 ready, or 554 / 421 refusing service. Anything else while
            # commands wait is a reply whose greeting was not captured.
            if not self._pending or code in (220, 421, 554):
                out.append(Greeting(ts_ns=ts, direction=SERVER, raw=raw, code=code, lines=lines))
                return
        enhanced = parse_enhanced(lines[0]) if lines else None
        if not (200 <= code <= 559 and code // 10 % 10 <= 5):
            # RFC 5321 4.2.1: the first digit is 2-5 and the second 0-5.
            self._anomaly(ts, SERVER, SmtpAnomalyKind.INVALID_REPLY_CODE, str(code), out)
        if (
            not self._pending
            and self._state is ClientState.DATA
            and code != ReplyCode.START_MAIL_INPUT  # a late 354 (its DATA was assumed)
        ):
            # A server says nothing during DATA content (RFC 5321 4.1.1.4): a reply now means
            # it saw the end of data that the capture lost. End the message there, pair the
            # reply with it, and read what follows as commands.
            self._anomaly(
                ts,
                SERVER,
                SmtpAnomalyKind.END_OF_DATA_NOT_CAPTURED,
                f"server replied {code}",
                out,
            )
            self._end_message(ts, b"", False, out)
            self._pending.append(_Pending(self._body_seq, "DATA", _Await.END, True))
            self._start_resync(CLIENT)
        if not self._pending:
            self._anomaly(ts, SERVER, SmtpAnomalyKind.REPLY_WITHOUT_COMMAND, str(code), out)
            out.append(
                Reply(
                    ts_ns=ts, direction=SERVER, raw=raw, code=code, lines=lines,
                    enhanced=enhanced, for_command=None, seq=None,
                )
            )  # fmt: skip
            return
        p = self._pair(ts, code, out)
        if p.verb in ("EHLO", "LHLO", "HELO") and 200 <= code < 300:
            keywords = (line.split(" ", 1)[0].upper() for line in lines[1:])
            self._pipelining = p.verb != "HELO" and "PIPELINING" in keywords
        if p.kind is _Await.AUTH and code == ReplyCode.AUTH_CHALLENGE:
            blob = lines[0] if lines else ""
            # RFC 4954 4: an empty challenge ("334 " or "334") is valid and decodes to nothing.
            out.append(
                sasl_step(
                    ts, SERVER, raw, blob.encode("latin-1", "replace"),
                    self._mechanism, seq=p.seq,
                )
            )  # fmt: skip
            if not p.assumed and self._state is ClientState.COMMAND:
                self._enter(ClientState.AUTH)
            return
        out.append(
            Reply(
                ts_ns=ts, direction=SERVER, raw=raw, code=code, lines=lines,
                enhanced=enhanced, for_command=p.verb, seq=p.seq, ends_message=p.ends_message,
            )
        )  # fmt: skip
        match p.kind:
            case _Await.DATA if code == ReplyCode.START_MAIL_INPUT:
                if not p.assumed and self._state is ClientState.COMMAND:
                    self._begin_content("DATA")
            case _Await.DATA if p.assumed and self._state is ClientState.DATA:
                # Content was assumed but DATA was refused: what followed were commands.
                self._anomaly(
                    ts, SERVER, SmtpAnomalyKind.DATA_REFUSED_AFTER_CONTENT, str(code), out
                )
            case _Await.AUTH if self._state is ClientState.AUTH:
                self._enter(ClientState.COMMAND)
            case _Await.STARTTLS if code == ReplyCode.SERVICE_READY:
                if self._state in (ClientState.COMMAND, ClientState.TLS_MAYBE):
                    self._state = ClientState.COMMAND
                    self._start_tls(ts, out)
            case _:
                pass


# -- recognising SMTP on a port that is not a mail port ---------------------------------------

# RFC 5321 4.1.1.1 / RFC 2033 4.1: the client's first command after the greeting.
_HELLO_VERBS: Final = (b"EHLO", b"HELO", b"LHLO")
_HELLO: Final = re.compile(rb"(?:EHLO|HELO|LHLO)[ \t\r\n]", re.IGNORECASE)


def is_greeting(payload: bytes) -> bool:
    """A flow's first server bytes are an SMTP greeting: `220 <domain> ... SMTP/ESMTP ...`
    (RFC 5321 4.2: the greeting names the service in practice; `220-` starts a multi-line one).
    A `220` greeting that does not name SMTP (FTP's too) is told by the client's first line."""
    if not payload.startswith((b"220 ", b"220-")):
        return False  # most flows probed: told without copying their first line
    line = payload[:512].split(b"\n", 1)[0].upper()
    return line.find(b"SMTP") >= 0


def may_be_greeting(payload: bytes) -> bool:
    """A `220` greeting that does not say which service it is (`220 Greetings`)."""
    return payload[:4] in (b"220 ", b"220-")


def is_hello(first: bytes) -> bool | None:
    """Whether a client's first bytes after a `220` greeting are an SMTP hello (EHLO, HELO,
    LHLO); None while too few bytes have come to tell."""
    if _HELLO.match(first):
        return True
    head = first.upper()
    if len(head) <= 4 and any(v.startswith(head) for v in _HELLO_VERBS):
        return None
    return False
