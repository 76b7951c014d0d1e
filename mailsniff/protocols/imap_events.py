"""The typed events of the IMAP parser (`imap.ImapParser`): frozen, slotted dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from mailsniff.protocols.base import (
    Anomaly,
    Direction,
    ParserAnomalyKind,
    SaslStep,
    StreamGap,
    TlsStarted,
)
from mailsniff.protocols.imap_grammar import Token

__all__ = [
    "Anomaly",
    "AuthResult",
    "Capabilities",
    "CodeArgs",
    "Command",
    "Completion",
    "CompressionStarted",
    "Continuation",
    "Copy",
    "Enabled",
    "Expunged",
    "Fetch",
    "Greeting",
    "IdInfo",
    "IdleDone",
    "ImapAnomalyKind",
    "ImapEvent",
    "ListEntry",
    "MailboxSelected",
    "MailboxStatus",
    "MessageData",
    "MessageEnd",
    "MessageGap",
    "MessageStart",
    "Namespace",
    "SaslStep",
    "SearchResult",
    "ServerStatus",
    "Store",
    "StreamGap",
    "TlsStarted",
    "Untagged",
]


class ImapAnomalyKind(ParserAnomalyKind):
    """The anomalies the IMAP parser reports."""

    NO_GREETING = "no-greeting"  # the first server line is not a greeting
    BAD_COMMAND = "bad-command"  # a client line that is not `tag SP command`
    EMPTY_LINE = "empty-line"  # an empty command line
    BAD_RESPONSE = "bad-response"  # a server line neither tagged, untagged nor continuation
    SYNTAX = "syntax"  # a command or response its grammar does not parse (the problems listed)
    UNKNOWN_TAG = "unknown-tag"  # a completion for a tag no captured command used
    DUPLICATE_TAG = "duplicate-tag"  # a tag reused while a command with it is pending
    TOO_MANY_PENDING = "too-many-pending"  # more unanswered commands than kept: oldest forgotten
    OVERLONG_LINE = "overlong-line"  # a line beyond limits.MAX_LINE: the rest dropped
    UNTERMINATED_LINE = "unterminated-line"  # the stream ended inside a line
    LINE_CUT = "line-cut"  # a line (or its literal) cut short by a gap or the end
    LITERAL_CUT = "literal-cut"  # the connection ended inside a literal
    LITERAL_TOO_LONG = "literal-too-long"  # a literal beyond what is kept inline
    LITERAL_MINUS_TOO_LONG = "literal-minus-too-long"  # {n-} over 4096 bytes (RFC 7888 5)
    CONTINUATION_ASSUMED = "continuation-assumed"  # a literal sent with no '+' seen
    SKIPPED_LINES = "skipped-lines"  # lines skipped after lost bytes
    IDLE_NOT_DONE = "idle-not-done"  # IDLE ended by something other than DONE
    AUTHENTICATE_ABANDONED = "authenticate-abandoned"  # a command in the middle of AUTHENTICATE
    LOGIN_DISABLED = "login-disabled"  # LOGIN after the server advertised LOGINDISABLED
    PIPELINED_AFTER_STARTTLS = "pipelined-after-starttls"  # commands sent in clear after STARTTLS
    UNKNOWN_COMPRESSION = "unknown-compression"  # COMPRESS other than DEFLATE accepted
    COMPRESSED_GAP = "compressed-gap"  # lost bytes broke the deflate stream
    INFLATE_ERROR = "inflate-error"  # the deflate stream does not inflate
    DECOMPRESSION_BOMB = "decompression-bomb"  # far more bytes inflated than were sent
    DEFLATE_END = "deflate-end"  # bytes after the end of the deflate stream


# --------------------------------------------------------------------------------------------

#: Response-code arguments as tokens: `[UIDVALIDITY 3857529045]` -> code "UIDVALIDITY",
#: args (Atom("3857529045"),).
CodeArgs = tuple[Token, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    ts_ns: int
    direction: Direction
    raw: bytes = b""  # the line(s) as sent, without message literals; at most MAX_LINE bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Greeting(_Event):
    """The server's first line (RFC 3501 7.1): `* OK`, `* PREAUTH` (already logged in) or BYE."""

    status: str  # "OK", "PREAUTH", "BYE"
    code: str | None
    code_args: CodeArgs
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(_Event):
    """One client command (RFC 3501 6): tag, name upper-cased, arguments as tokens."""

    seq: int  # number of the command in the connection
    tag: str
    name: str  # "FETCH" for both FETCH and UID FETCH
    uid: bool  # sent as `UID <name>` (RFC 3501 6.4.8)
    args: tuple[Token, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion(_Event):
    """A tagged OK/NO/BAD (RFC 3501 7.1), paired by tag with its command (None: unknown tag)."""

    tag: str
    status: str  # "OK", "NO", "BAD"
    code: str | None  # response code, e.g. "APPENDUID", "TRYCREATE", "READ-WRITE"
    code_args: CodeArgs
    text: str
    command: Command | None

    @property
    def ok(self) -> bool:
        return self.status == "OK"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStatus(_Event):
    """An untagged OK/NO/BAD/BYE after the greeting (RFC 3501 7.1): alerts, BYE at logout."""

    status: str
    code: str | None
    code_args: CodeArgs
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Continuation(_Event):
    """A server `+` (RFC 3501 7.5) and what it was for."""

    text: str
    purpose: str  # "literal", "sasl", "idle" or "unexpected"
    tag: str | None  # the command it answers


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities(_Event):
    """The server's capability list: `* CAPABILITY`, or `[CAPABILITY ...]` in a greeting/OK."""

    capabilities: tuple[str, ...]  # as sent
    source: str  # "untagged", "greeting", "response-code"

    def has(self, name: str) -> bool:
        return name.upper() in (c.upper() for c in self.capabilities)

    @property
    def login_disabled(self) -> bool:
        """LOGINDISABLED (RFC 3501 6.2.3): LOGIN refused, usually until STARTTLS."""
        return self.has("LOGINDISABLED")

    @property
    def auth_mechanisms(self) -> tuple[str, ...]:
        return tuple(c[5:].upper() for c in self.capabilities if c.upper().startswith("AUTH="))


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResult(_Event):
    """A LOGIN or AUTHENTICATE and its outcome, once its tagged completion is seen."""

    tag: str
    method: str  # "LOGIN" or "AUTHENTICATE"
    mechanism: str | None  # SASL mechanism for AUTHENTICATE
    user: str | None
    authzid: str | None
    secret: str | None  # the password, token or digest as captured
    secret_raw: bytes  # the secret's bytes exactly as sent (what a redaction must mask)
    success: bool | None  # None: the connection ended without an answer
    status_text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxSelected(_Event):
    """SELECT/EXAMINE (RFC 3501 6.3.1) with the mailbox facts the server gave before OK."""

    tag: str
    mailbox: str
    read_only: bool  # EXAMINE, or [READ-ONLY]
    ok: bool
    exists: int | None
    recent: int | None
    uidvalidity: int | None
    uidnext: int | None
    unseen: int | None
    highestmodseq: int | None
    flags: tuple[str, ...]
    permanent_flags: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxStatus(_Event):
    """`* STATUS mailbox (MESSAGES n ...)` (RFC 3501 7.2.4)."""

    mailbox: str
    items: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEntry(_Event):
    """`* LIST` / `* LSUB` (RFC 3501 7.2.2-3): one mailbox of a listing."""

    kind: str  # "LIST" or "LSUB"
    mailbox: str
    flags: tuple[str, ...]  # \HasChildren, \Noselect, \Sent (RFC 6154)...
    delimiter: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult(_Event):
    """`* SEARCH n...` (RFC 3501 7.2.5): numbers (UIDs when it answers UID SEARCH)."""

    numbers: tuple[int, ...]
    uid: bool
    tag: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch(_Event):
    """`* n FETCH (...)` (RFC 3501 7.4.2): the data items of one message, once all are read.

    Body sections are not repeated here: they came as MessageStart/Data/End with the ids in
    `message_ids`.
    """

    mailbox: str | None
    seq: int
    uid: int | None
    flags: tuple[str, ...] | None  # None: no FLAGS item
    internaldate: str | None
    size: int | None  # RFC822.SIZE
    message_ids: tuple[int, ...]
    items: tuple[Token, ...]  # the whole item list, message literals as LiteralRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Store(_Event):
    """A STORE / UID STORE command (RFC 3501 6.4.6): flags set, added or removed."""

    tag: str
    mailbox: str | None
    uid: bool
    messages: str  # the sequence set as sent
    operation: str  # "+", "-" or "" (replace)
    silent: bool
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Expunged(_Event):
    """A message removed: `* n EXPUNGE` (seq) or `* VANISHED uid-set` (RFC 7162)."""

    mailbox: str | None
    seq: int | None
    uids: str | None  # VANISHED uid set
    earlier: bool = False  # VANISHED (EARLIER): removed before this session


@dataclass(frozen=True, slots=True, kw_only=True)
class Copy(_Event):
    """COPY / MOVE (RFC 3501 6.4.7, RFC 6851) and its outcome."""

    tag: str
    move: bool
    uid: bool
    source: str | None  # the selected mailbox
    destination: str
    messages: str
    ok: bool | None  # None: never answered
    copyuid: str | None  # `[COPYUID validity src dst]` (RFC 4315)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdInfo(_Event):
    """ID (RFC 2971): the client's (command) or server's (`* ID`) field/value pairs."""

    fields: tuple[tuple[str, str | None], ...]

    def get(self, key: str) -> str | None:
        for k, v in self.fields:
            if k.lower() == key.lower():
                return v
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Enabled(_Event):
    """`* ENABLED ...` (RFC 5161)."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(_Event):
    """`* NAMESPACE` (RFC 2342): (prefix, delimiter) of personal, other users' and shared ones."""

    personal: tuple[tuple[str, str | None], ...]
    other: tuple[tuple[str, str | None], ...]
    shared: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Untagged(_Event):
    """Any other untagged data (`* 3 EXISTS`, `* FLAGS (...)`, `* ESEARCH ...`)."""

    keyword: str
    number: int | None
    args: tuple[Token, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleDone(_Event):
    """The client's DONE ending IDLE (RFC 2177)."""

    tag: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStart(_Event):
    """A message starts crossing the wire: a FETCH body section (server) or an APPEND (client).

    `whole` is True only for a full message (BODY[] / RFC822 / BINARY[], no partial range); a
    header, a part or a `<origin.length>` range is never whole.
    """

    message_id: int
    source: str  # "FETCH" or "APPEND"
    tag: str | None  # APPEND: its tag; FETCH: the pending FETCH it most likely answers
    mailbox: str | None  # FETCH: the selected mailbox; APPEND: the destination
    seq: int | None  # FETCH: message sequence number
    uid: int | None  # FETCH: UID when the server sent it before the body
    item: str  # the item name as sent: "BODY[]", "BODY[HEADER]<0>", "RFC822", "APPEND"
    section: str  # "" (whole), "HEADER", "TEXT", "1.2", "HEADER.FIELDS (FROM)"...
    origin: int | None  # partial fetch: the first byte's offset
    requested_length: int | None  # partial fetch: the length the command asked for
    partial: bool
    whole: bool
    size: int  # bytes announced by the literal
    flags: tuple[str, ...]  # APPEND flags
    date: str | None  # APPEND date-time


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageData(_Event):
    """A chunk of message content, exactly as sent (`raw` is the same bytes)."""

    message_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageGap(_Event):
    """`length` bytes of the message were never captured."""

    message_id: int
    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnd(_Event):
    """The end of a message's literal (complete) or of the capture (not complete)."""

    message_id: int
    size: int  # bytes handed out
    complete: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressionStarted(_Event):
    """COMPRESS was answered OK (RFC 4978): both directions are inflated from here on."""

    mechanism: str


ImapEvent = (
    Greeting
    | Command
    | Completion
    | ServerStatus
    | Continuation
    | Capabilities
    | SaslStep
    | AuthResult
    | MailboxSelected
    | MailboxStatus
    | ListEntry
    | SearchResult
    | Fetch
    | Store
    | Expunged
    | Copy
    | IdInfo
    | Enabled
    | Namespace
    | Untagged
    | IdleDone
    | MessageStart
    | MessageData
    | MessageGap
    | MessageEnd
    | TlsStarted
    | CompressionStarted
    | StreamGap
    | Anomaly
)
