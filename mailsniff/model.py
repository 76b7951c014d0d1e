"""Session records: what a mail dialogue was, in the field names of the JSON Lines contract.

Builders in `mailsniff.session` fill these in as protocol events arrive; analysis adds
bcc / header_only / findings; renderers only read them. Timestamps are integer nanoseconds
since the Unix epoch (UTC); renderers turn them into ISO 8601.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from mailsniff.protocols.base import Direction

if TYPE_CHECKING:
    from mailsniff.tls.events import TlsInfo

__all__ = [
    "Address",
    "Attachment",
    "AuthAttempt",
    "Endpoint",
    "Exchange",
    "Finding",
    "Gap",
    "Message",
    "Protocol",
    "RcptAttempt",
    "RetrievedMessage",
    "Session",
    "SessionTls",
    "Transaction",
    "TranscriptLine",
]


class Protocol(StrEnum):
    SMTP = "smtp"
    POP3 = "pop3"
    IMAP = "imap"


@dataclass(slots=True, frozen=True)
class Endpoint:
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
    name: str  # display name, RFC 2047 decoded; "" when absent
    address: str  # addr-spec as written (local@domain), "" for an empty group


@dataclass(slots=True, frozen=True)
class Attachment:
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


@dataclass(slots=True)
class AuthAttempt:
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
    address: str
    params: dict[str, str | None] = field(default_factory=dict)
    reply: str | None = None  # None when the reply was not captured
    ts_ns: int = 0

    @property
    def status(self) -> str:
        """'accepted', 'rejected', 'deferred' or 'unknown' (reply not captured)."""
        if self.reply is None:
            return "unknown"
        code = self.reply[:1]
        return {"2": "accepted", "4": "deferred", "5": "rejected"}.get(code, "unknown")


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


@dataclass(slots=True, frozen=True)
class Finding:
    kind: str  # "cleartext-credentials", "auth-failed", "bcc", "from-mismatch", ...
    detail: str
    #: "info", "low", "medium" or "high"; analysis fills in the kind's own when left None
    severity: str | None = None


@dataclass(slots=True, frozen=True)
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


@dataclass(slots=True)
class SessionTls:
    """How a session's TLS was handled (filled by mailsniff.session.tls_layer)."""

    mode: str  # "starttls" (STARTTLS/STLS accepted) or "implicit" (TLS from the first byte)
    info: TlsInfo
    keylog: bool  # a key log was given
    #: Stream offset (bytes from the start of the connection, per direction) where TLS began;
    #: the offsets in `info.problems` and `info.failures` count from there.
    client_offset: int = 0
    server_offset: int = 0

    @property
    def decrypted(self) -> bool:
        return self.info.decrypted

    @property
    def reason(self) -> str | None:
        """Why the TLS was not (all) decrypted; None when it was."""
        if self.info.decrypted:
            return None
        if not self.keylog:
            return "no key log given (--keylog FILE or SSLKEYLOGFILE)"
        if self.info.problems:
            return self.info.problems[0]
        return "no encrypted records captured"


@dataclass(slots=True)
class Session:
    """One TCP connection carrying SMTP / POP3 / IMAP."""

    id: int
    protocol: Protocol
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
    anomalies: list[str] = field(default_factory=list)
    #: How the connection ended: "fin", "rst", "idle", "eof" (end of input).
    close_reason: str | None = None
    handshake_seen: bool = False
    client_bytes: int = 0
    server_bytes: int = 0
    packets: int = 0
    #: POP3 STAT answers seen, in order: (count, octets)
    mailbox_stats: list[tuple[int, int]] = field(default_factory=list)
    #: The connection's TLS as seen (version, suite, SNI, decrypted or why not); None: no TLS.
    tls_info: SessionTls | None = None
    #: When the dialogue went inside TLS (STARTTLS accepted, or the first byte on an
    #: implicit-TLS port): credentials read after it crossed the network encrypted.
    tls_from_ns: int | None = None
