"""The bottom layer: shared value types and session records (the JSON Lines contract's names).

Every other layer may import this module; it imports nothing of mailsniff's.

Builders in `mailsniff.session` fill these in as protocol events arrive; analysis adds
bcc / header_only / findings; renderers only read them. Timestamps are integer nanoseconds
since the Unix epoch (UTC); renderers turn them into ISO 8601.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

__all__ = [
    "Address",
    "AnomalyKind",
    "SessionAnomaly",
    "Attachment",
    "AuthAttempt",
    "Direction",
    "Endpoint",
    "Exchange",
    "Finding",
    "Gap",
    "ImapChange",
    "ImapMailbox",
    "ImapState",
    "ImapTransfer",
    "Message",
    "Protocol",
    "RcptAttempt",
    "ReplyClass",
    "RetrievedMessage",
    "Session",
    "SessionTls",
    "TlsFailure",
    "Transaction",
    "TranscriptLine",
    "classify_reply",
    "outcome_of",
    "reply_failed",
    "reply_outcome",
    "reply_positive",
    "stored_reply_class",
    "timestamp_in_range",
]


#: Seconds since the epoch of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the span ISO 8601's
#: four-digit years (and Python's datetime) can write.
_FIRST_SECOND = -62_135_596_800
_LAST_SECOND = 253_402_300_799


def timestamp_in_range(ts_ns: int) -> bool:
    """Whether `ts_ns` falls in years 1-9999, so ISO 8601 (and a From_ line) can write it."""
    return _FIRST_SECOND <= ts_ns // 1_000_000_000 <= _LAST_SECOND


class ReplyClass(IntEnum):
    """The first digit of a reply code (RFC 5321 4.2.1)."""

    POSITIVE_PRELIMINARY = 1  # not used by SMTP; listed for completeness
    POSITIVE_COMPLETION = 2
    POSITIVE_INTERMEDIATE = 3
    TRANSIENT_NEGATIVE = 4
    PERMANENT_NEGATIVE = 5


def classify_reply(code: int) -> ReplyClass | None:
    """The class of a reply code (its first digit), or None for a code outside 100-599. The one
    place replies are classified (`protocols.replies.classify`, stored lines, the client)."""
    if 100 <= code <= 599:
        return _REPLY_CLASSES[code // 100 - 1]
    return None


#: ReplyClass by first digit - 1 (an index, not a `ReplyClass(n)` call: the enum lookup is a
#: Python-level call, and every stored reply is classified when a session is written).
_REPLY_CLASSES: tuple[ReplyClass, ...] = tuple(ReplyClass)


#: How a reply of each class ended its command.
_OUTCOMES = {
    ReplyClass.POSITIVE_COMPLETION: "accepted",
    ReplyClass.TRANSIENT_NEGATIVE: "deferred",
    ReplyClass.PERMANENT_NEGATIVE: "rejected",
}
#: POP3 status indicators (RFC 1939 3) as the reply class they stand for.
_INDICATORS = {"+": ReplyClass.POSITIVE_COMPLETION, "-": ReplyClass.PERMANENT_NEGATIVE}


def stored_reply_class(reply: str | None) -> ReplyClass | None:
    """The class of a stored reply line (`250 OK`, `354 go ahead`, `+OK`, `-ERR ...`), or None
    when it was not captured or carries no code."""
    if not reply:
        return None
    head = reply[:3]
    if head.isdigit() and len(head) == 3:
        return classify_reply(int(head))
    return _INDICATORS.get(reply[0])


def outcome_of(cls: ReplyClass | None) -> str:
    """How a reply of class `cls` ended its command: 'accepted', 'deferred' (4xx), 'rejected'
    (5xx, -ERR) or 'unknown' (not captured, no code, or an intermediate 3xx)."""
    return _OUTCOMES.get(cls, "unknown") if cls is not None else "unknown"


def reply_outcome(reply: str | None) -> str:
    """How a stored reply line ended its command (see `outcome_of`)."""
    return _outcome_of_head(reply[:3]) if reply else "unknown"


# The outcome depends on a reply's first three characters only (a code, or `+`/`-`), and every
# recipient's status is asked for several times (analysis, JSON, the Sent copy): remembered by
# them (a bounded cache, since the replies come from the capture).
@functools.lru_cache(maxsize=4096)
def _outcome_of_head(head: str) -> str:
    return outcome_of(stored_reply_class(head))


def reply_positive(reply: str | None) -> bool:
    """A 2xx or 3xx (or +OK) reply: the command went on or succeeded."""
    return stored_reply_class(reply) in (
        ReplyClass.POSITIVE_COMPLETION,
        ReplyClass.POSITIVE_INTERMEDIATE,
    )


def reply_failed(reply: str | None) -> bool:
    """A 4xx/5xx or -ERR reply."""
    return reply_outcome(reply) in ("deferred", "rejected")


class Direction(StrEnum):
    """Who sent the bytes: the side that sends commands, or the side that answers."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def other(self) -> Direction:
        return Direction.SERVER if self is Direction.CLIENT else Direction.CLIENT


class Protocol(StrEnum):
    """The built-in protocols' registry names (a Session's `protocol` is any registered name)."""

    SMTP = "smtp"
    POP3 = "pop3"
    IMAP = "imap"


@dataclass(slots=True, frozen=True)
class Endpoint:
    """One side of a connection: its IP address (text) and TCP port."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(slots=True, frozen=True)
class Gap:
    """Bytes of one direction that were never captured."""

    direction: Direction
    offset: int  # stream offset (bytes after the ISN+1, or after the first byte seen)
    length: int
    ts_ns: int = 0


@dataclass(slots=True, frozen=True)
class Address:
    """One address of a header field (From, To, Cc, ...), as parsed."""

    name: str  # display name, RFC 2047 decoded; "" when absent
    address: str  # addr-spec as written (local@domain), "" for an empty group


@dataclass(slots=True, frozen=True)
class Attachment:
    """One attachment (or named inline part) of a message, decoded to hash it."""

    filename: str | None
    content_type: str
    size: int  # decoded bytes
    sha256: str
    disposition: str | None = None  # "attachment" / "inline" / None


@dataclass(slots=True)
class Message:
    """One message as transferred (after dot-unstuffing)."""

    size: int
    sha256: str
    from_: list[Address] = field(default_factory=list)
    sender: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    subject: str | None = None
    date: str | None = None
    message_id: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    #: Every header in order as (name as written, decoded value), for display.
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: Only the first MAX_MESSAGE bytes were kept for parsing (size/sha256 still cover all).
    truncated: bool = False
    #: Bytes of the message that were never captured (TCP gaps inside it); 0 when whole.
    gap_bytes: int = 0
    #: Header problems worth showing (malformed encoded-words, obsolete syntax, 8-bit bytes).
    defects: list[str] = field(default_factory=list)
    #: SHA-256 of the body (the bytes after the header block), computed only for a whole message
    #: without a Message-ID: what the Sent-copy analysis matches such a message by. Not output.
    body_sha256: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class AuthAttempt:
    """One authentication attempt (SASL AUTH, POP3 USER/PASS or APOP, IMAP LOGIN)."""

    mechanism: str  # SASL name upper-case, "USER" / "APOP" for POP3
    username: str | None = None
    password: str | None = None
    success: bool | None = None
    reply: str | None = None
    ts_ns: int = 0
    authzid: str | None = None  # SASL PLAIN authorization identity, when present
    challenge: str | None = None  # CRAM-MD5 / APOP challenge (decoded)
    response: str | None = None  # CRAM-MD5 digest / APOP digest
    #: True when credentials travelled without base64 where base64 was expected (the seed's
    #: `AUTH LOGIN` answered with plain `crazywill`): shown as sent.
    not_base64: bool = False
    cancelled: bool = False  # client sent "*"
    #: NTLM (MS-NLMP): the domain and workstation of the AUTHENTICATE message, and which hash
    #: its response is ("NetNTLMv2", "NetNTLMv1", "anonymous"); the hashcat line is `response`.
    domain: str | None = None
    workstation: str | None = None
    hash_type: str | None = None
    #: Secret bytes exactly as the client sent them (passwords, tokens, digests, and the SASL
    #: responses carrying them), whatever their encoding: what --redact masks. Not output.
    secrets: list[bytes] = field(default_factory=list, repr=False)


@dataclass(slots=True)
class RcptAttempt:
    """One RCPT TO command of an SMTP transaction, with its reply."""

    address: str
    params: dict[str, str | None] = field(default_factory=dict)
    reply: str | None = None  # None when the reply was not captured
    ts_ns: int = 0
    #: Set by analysis (envelope vs headers): "to", "cc", "bcc", "envelope" (accepted, no
    #: message to compare), "rejected" or "deferred".
    role: str | None = None

    @property
    def status(self) -> str:
        """'accepted', 'rejected', 'deferred' or 'unknown' (reply not captured)."""
        return reply_outcome(self.reply)


@dataclass(slots=True)
class Transaction:
    """One SMTP mail transaction (RFC 5321 3.3): MAIL FROM, RCPT TO..., DATA/BDAT."""

    mail_from: str
    mail_from_reply: str | None = None
    mail_from_params: dict[str, str | None] = field(default_factory=dict)
    rcpts: list[RcptAttempt] = field(default_factory=list)
    data_reply: str | None = None
    message: Message | None = None
    bcc: list[str] = field(default_factory=list)
    header_only: list[str] = field(default_factory=list)
    ts_ns: int = 0
    #: "DATA" or "BDAT" (None while no body was started)
    body_command: str | None = None

    @property
    def rcpt_to(self) -> list[str]:
        return [r.address for r in self.rcpts]

    @property
    def rcpt_accepted(self) -> list[str]:
        return [r.address for r in self.rcpts if r.status in ("accepted", "unknown")]


@dataclass(slots=True)
class RetrievedMessage:
    """A POP3 RETR/TOP (later IMAP FETCH) result."""

    command: str  # e.g. "RETR 254", "TOP 254 0"
    number: int | None
    partial: bool
    message: Message
    ts_ns: int = 0
    #: IMAP only (None elsewhere): how the message crossed the wire.
    imap: ImapTransfer | None = None


@dataclass(slots=True)
class ImapTransfer:
    """An IMAP message: fetched by the client (FETCH) or filed by it (APPEND)."""

    source: str  # "FETCH" or "APPEND"
    mailbox: str | None
    uid: int | None = None
    section: str = ""  # "" whole message, "HEADER", "TEXT", "1.2", ...
    item: str = ""  # as sent: "BODY[]", "BODY[HEADER]<0>", "RFC822"
    origin: int | None = None  # partial fetch: the first byte's offset
    flags: list[str] = field(default_factory=list)  # FETCH FLAGS / APPEND flags
    date: str | None = None  # APPEND date-time
    outcome: str | None = None  # APPEND: "OK", "NO", "BAD"; None: never answered


@dataclass(slots=True)
class ImapMailbox:
    """A SELECT or EXAMINE and what the server said about the mailbox."""

    name: str
    read_only: bool
    ok: bool
    exists: int | None
    recent: int | None
    uidvalidity: int | None
    uidnext: int | None
    unseen: int | None
    ts_ns: int = 0


@dataclass(slots=True)
class ImapChange:
    """A STORE, EXPUNGE, COPY or MOVE: what happened to which messages of which mailbox."""

    action: str  # "store", "expunge", "copy", "move"
    mailbox: str | None
    messages: str  # sequence set / UID set / number as sent
    uid: bool = False
    flags: list[str] = field(default_factory=list)  # store: the flags
    operation: str = ""  # store: "+", "-" or "" (replace)
    destination: str | None = None  # copy/move
    ok: bool | None = None  # copy/move outcome
    ts_ns: int = 0


@dataclass(slots=True)
class ImapState:
    """The IMAP-specific facts of a session."""

    #: The client's ID (RFC 2971) field/value pairs, and the server's.
    client_id: list[tuple[str, str | None]] | None = None
    server_id: list[tuple[str, str | None]] | None = None
    preauth: bool = False
    login_disabled: bool = False
    #: When LOGINDISABLED was first advertised (attempts after it ignored it); None: never.
    login_disabled_ns: int | None = None
    mailboxes: list[ImapMailbox] = field(default_factory=list)
    changes: list[ImapChange] = field(default_factory=list)
    compressed: bool = False


class AnomalyKind(StrEnum):
    """The anomalies noted above the parsers (reassembly, the pipeline, the session builders'
    bounds). A parser's own anomalies keep the kind it gave them (a protocol's
    ParserAnomalyKind, the TLS layer's TlsAnomalyKind): each protocol owns its names, so a new
    protocol adds its own StrEnum."""

    OVERLAP_CONFLICT = "overlap-conflict"  # a range captured twice with different content
    EVICTED = "evicted"  # the flow was ended early to bound memory
    TIMESTAMP_RANGE = "timestamp-range"  # a time outside years 1-9999
    PREAMBLE = "preamble"  # a greeting after other bytes (a proxy or tunnel handshake)
    CLEARTEXT_ON_TLS_PORT = "cleartext-on-tls-port"  # a greeting without TLS on 465/993/995
    NOT_KEPT = "not-kept"  # records or anomalies beyond a bound, counted
    TLS_UNDECRYPTED = "tls-undecrypted"  # TLS records the key log could not open: a gap
    TLS_ALERT = "tls-alert"  # a fatal TLS alert (the TLS decoder's own: tls.events.TlsAnomalyKind)


#: Kinds whose detail is a whole sentence, shown without the kind in front.
_SENTENCE_KINDS = frozenset(
    {
        AnomalyKind.EVICTED,
        AnomalyKind.TIMESTAMP_RANGE,
        AnomalyKind.PREAMBLE,
        AnomalyKind.CLEARTEXT_ON_TLS_PORT,
        AnomalyKind.NOT_KEPT,
    }
)


@dataclass(slots=True, frozen=True)
class SessionAnomaly:
    """Something a well-behaved peer would not send, damage, or a guess, as the session keeps it:
    what kind, one line for a person, and where (direction, stream offset, time) when that is
    known."""

    #: An `AnomalyKind`, or the kind a parser or the TLS layer gave it (its value is the machine
    #: name output shows, `unknown-reply`). Typed as the common StrEnum base: the kinds come from
    #: several enums, and compiled code checks a field typed with an enum class by exact type.
    kind: StrEnum
    detail: str = ""
    direction: Direction | None = None
    offset: int | None = None
    ts_ns: int | None = None

    @property
    def text(self) -> str:
        """The one line shown and written (`unknown-reply: 999 what`)."""
        if not self.detail:
            return self.kind
        if self.kind in _SENTENCE_KINDS:
            return self.detail
        return f"{self.kind}: {self.detail}"

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True, frozen=True)
class Finding:
    """Something analysis points out about a session (analysis.kinds lists the kinds)."""

    kind: str  # an analysis.kinds.FindingKind: "cleartext-credentials", "bcc", "gap", ...
    detail: str
    #: "info", "low", "medium" or "high"; analysis fills in the kind's own when left None
    severity: str | None = None
    #: 1-based index of the SMTP transaction / retrieved message the finding is about
    transaction: int | None = None
    message: int | None = None


# Not frozen: one is made for every command and again when its reply comes (a frozen
# dataclass's `__init__` sets each field through `object.__setattr__`: 757 against 202 ns);
# nothing changes one after it is made.
@dataclass(slots=True)
class Exchange:
    """One command and its reply, for the console's command table."""

    ts_ns: int
    command: str  # verb upper-case, e.g. "STAT", "MAIL"
    argument: str  # as sent (text), "" when none
    reply: str | None  # first reply line; None when not captured
    reply_lines: int = 1


@dataclass(slots=True, frozen=True)
class TranscriptLine:
    """One line of the dialogue, for --transcript."""

    ts_ns: int
    direction: Direction
    text: str  # the line as sent, without CRLF, decoded with surrogateescape replaced
    note: str | None = None  # decoded meaning (base64 undone, "message line", ...)
    #: Read from decrypted TLS records (a key log was given), not from cleartext on the wire.
    decrypted: bool = False


@dataclass(frozen=True, slots=True)
class TlsFailure:
    """A TLS record that failed authentication: where it is (never a guess at why)."""

    direction: Direction
    offset: int  # bytes into the direction, counted from where TLS began
    record: int  # 0-based number of the record in its direction


@dataclass(slots=True)
class SessionTls:
    """How a session's TLS was handled (filled by mailsniff.session.tls_layer from the TLS
    record layer's view of the connection). Fields unknown so far are None or empty."""

    mode: str  # "starttls" (STARTTLS/STLS accepted) or "implicit" (TLS from the first byte)
    keylog: bool  # a key log was given
    version: str | None = None  # "TLS 1.3"
    cipher_suite: str | None = None  # IANA name
    sni: str | None = None
    alpn: str | None = None
    alpn_offered: tuple[str, ...] = ()
    resumed: bool = False
    #: False for static RSA key transport; None while the suite is unknown.
    forward_secrecy: bool | None = None
    legacy_version: bool = False  # below TLS 1.2
    keys_found: bool = False  # the key log held this connection's secrets
    records_decrypted: int = 0
    bytes_decrypted: int = 0
    #: Why not everything could be decrypted, in the order found (empty when all was).
    problems: tuple[str, ...] = ()
    failures: tuple[TlsFailure, ...] = ()
    #: Stream offset (bytes from the start of the connection, per direction) where TLS began;
    #: the offsets in `problems` and `failures` count from there.
    client_offset: int = 0
    server_offset: int = 0

    @property
    def decrypted(self) -> bool:
        """Keys were found and every record seen was decrypted and authenticated."""
        return self.keys_found and not self.problems

    @property
    def reason(self) -> str | None:
        """Why the TLS was not (all) decrypted; None when it was."""
        if self.decrypted:
            return None
        if not self.keylog:
            return "no key log given (--keylog FILE or SSLKEYLOGFILE)"
        if self.problems:
            return self.problems[0]
        return "no encrypted records captured"


@dataclass(slots=True)
class Session:
    """One TCP connection carrying SMTP / POP3 / IMAP."""

    id: int
    #: The protocol's registry name (`mailsniff.session.registry`): "smtp", "pop3", ...
    protocol: str
    client: Endpoint
    server: Endpoint
    start_ns: int
    end_ns: int
    complete: bool = False
    gaps: list[Gap] = field(default_factory=list)
    banner: str | None = None
    helo: str | None = None
    tls: bool = False
    #: Port 465/995/993: the whole connection is TLS from the first byte; nothing parsed.
    implicit_tls: bool = False
    auth: list[AuthAttempt] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    messages: list[RetrievedMessage] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    transcript: list[TranscriptLine] = field(default_factory=list)
    transcript_dropped: int = 0
    #: Record the transcript at all (set before the handler is built; off unless asked for,
    #: since it is the costliest part of a session for big messages).
    keep_transcript: bool = True
    #: Protocol violations and oddities seen (unknown reply, garbage line, ...).
    anomalies: list[SessionAnomaly] = field(default_factory=list)
    #: How the connection ended: "fin", "rst", "idle", "eof" (end of input).
    close_reason: str | None = None
    handshake_seen: bool = False
    client_bytes: int = 0
    server_bytes: int = 0
    packets: int = 0
    #: POP3 STAT answers seen, in order: (count, octets)
    mailbox_stats: list[tuple[int, int]] = field(default_factory=list)
    #: Community ID v1 of the flow and a Zeek-style uid (mailsniff.analysis.ids).
    community_id: str | None = None
    uid: str | None = None
    #: IMAP sessions only: client ID, mailboxes, flag changes, expunges, copies.
    imap: ImapState | None = None
    #: The connection's TLS as seen (version, suite, SNI, decrypted or why not); None: no TLS.
    tls_info: SessionTls | None = None
    #: When the dialogue went inside TLS (STARTTLS accepted, or the first byte on an
    #: implicit-TLS port): credentials read after it crossed the network encrypted.
    tls_from_ns: int | None = None


def incomplete_reason(owner: Transaction | RetrievedMessage, message: Message) -> str | None:
    """Why the message as carried is not the whole message (None: it is whole): a partial
    transfer (POP3 TOP, an IMAP partial FETCH or a section) or bytes never captured."""
    why: list[str] = []
    if isinstance(owner, RetrievedMessage) and owner.partial:
        why.append("partial transfer (TOP, or a partial or section FETCH)")
    if message.gap_bytes:
        why.append(f"{message.gap_bytes} bytes never captured")
    return "; ".join(why) or None
