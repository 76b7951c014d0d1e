"""Every kind of finding, with its severity and its one-line meaning (docs/jsonl.md lists them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FindingKind", "Severity"]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class FindingKind(StrEnum):
    """A finding's kind: its JSON name, its usual severity (a finding may set its own, as
    from-mismatch does from its context) and what it means."""

    severity: Severity
    meaning: str

    def __new__(cls, value: str, severity: Severity, meaning: str) -> FindingKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.severity = severity
        member.meaning = meaning
        return member

    CLEARTEXT_CREDENTIALS = (
        "cleartext-credentials",
        Severity.HIGH,
        "a password or bearer token crossed the network readable",
    )
    CRACKABLE_CREDENTIALS = (
        "crackable-credentials",
        Severity.HIGH,
        "CRAM-MD5/APOP challenge and response, or an NTLM hash, captured: guessable offline",
    )
    AUTH_FAILED = ("auth-failed", Severity.LOW, "an authentication attempt was refused")
    LOGIN_DISABLED_IGNORED = (
        "login-disabled-ignored",
        Severity.MEDIUM,
        "IMAP LOGIN/AUTHENTICATE sent in clear although the server advertised LOGINDISABLED",
    )
    MESSAGES_EXPUNGED = (
        "messages-expunged",
        Severity.INFO,
        "IMAP messages marked \\Deleted or expunged from a mailbox",
    )
    BCC = ("bcc", Severity.INFO, "accepted envelope recipients that appear in neither To nor Cc")
    HEADER_ONLY = (
        "header-only",
        Severity.LOW,
        "addresses shown in To/Cc that were not envelope recipients of the transaction",
    )
    FROM_MISMATCH = (
        "from-mismatch",
        Severity.MEDIUM,
        "header From differs from MAIL FROM, the authenticated user, or Sender",
    )
    SENDER_REJECTED = ("sender-rejected", Severity.LOW, "the server refused MAIL FROM")
    RECIPIENT_REJECTED = ("recipient-rejected", Severity.LOW, "the server refused a RCPT TO")
    MESSAGE_REJECTED = (
        "message-rejected",
        Severity.LOW,
        "the server refused the message after DATA/BDAT (4xx/5xx)",
    )
    BCC_HEADER_PRESENT = (
        "bcc-header-present",
        Severity.MEDIUM,
        "a Bcc header was transmitted inside the message",
    )
    GAP = ("gap", Severity.MEDIUM, "bytes of the connection were never captured")
    MESSAGE_TRUNCATED = (
        "message-truncated",
        Severity.LOW,
        "a message exceeded the kept size; size and sha256 still cover all of it",
    )
    ANOMALY = (
        "anomaly",
        Severity.LOW,
        "the peer broke the protocol (unknown reply, garbage, odd end of data)",
    )
    OVERLAP_CONFLICT = (
        "overlap-conflict",
        Severity.MEDIUM,
        "TCP bytes captured twice with different content (evasion or corruption)",
    )
    TLS_LEGACY_VERSION = (
        "tls-legacy-version",
        Severity.MEDIUM,
        "TLS below 1.2 negotiated (SSL 3.0, TLS 1.0, 1.1: deprecated, RFC 8996)",
    )
    TLS_NO_FORWARD_SECRECY = (
        "tls-no-forward-secrecy",
        Severity.LOW,
        "a TLS suite without forward secrecy (RSA key transport): the server's private key "
        "decrypts recorded traffic",
    )
