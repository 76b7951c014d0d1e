"""Every kind of finding, with its severity and its one-line meaning (docs/jsonl.md lists them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FindingKind", "Severity"]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


#: A FindingKind member's value: its JSON name, its usual severity, what it means.
_Member = tuple[str, Severity, str]


def _info(name: str, meaning: str) -> _Member:
    return name, Severity.INFO, meaning


def _low(name: str, meaning: str) -> _Member:
    return name, Severity.LOW, meaning


def _medium(name: str, meaning: str) -> _Member:
    return name, Severity.MEDIUM, meaning


def _high(name: str, meaning: str) -> _Member:
    return name, Severity.HIGH, meaning


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

    CLEARTEXT_CREDENTIALS = _high(
        "cleartext-credentials", "a password or bearer token crossed the network readable"
    )
    CRACKABLE_CREDENTIALS = _high(
        "crackable-credentials",
        "CRAM-MD5/APOP challenge and response, or an NTLM hash, captured: guessable offline",
    )
    AUTH_FAILED = _low("auth-failed", "an authentication attempt was refused")
    LOGIN_DISABLED_IGNORED = _medium(
        "login-disabled-ignored",
        "IMAP LOGIN/AUTHENTICATE sent in clear although the server advertised LOGINDISABLED",
    )
    MESSAGES_EXPUNGED = _info(
        "messages-expunged", "IMAP messages marked \\Deleted or expunged from a mailbox"
    )
    BCC = _info("bcc", "accepted envelope recipients that appear in neither To nor Cc")
    HEADER_ONLY = _low(
        "header-only",
        "addresses shown in To/Cc that were not envelope recipients of the transaction",
    )
    FROM_MISMATCH = _medium(
        "from-mismatch", "header From differs from MAIL FROM, the authenticated user, or Sender"
    )
    SENDER_REJECTED = _low("sender-rejected", "the server refused MAIL FROM")
    RECIPIENT_REJECTED = _low("recipient-rejected", "the server refused a RCPT TO")
    MESSAGE_REJECTED = _low(
        "message-rejected", "the server refused the message after DATA/BDAT (4xx/5xx)"
    )
    BCC_HEADER_PRESENT = _medium(
        "bcc-header-present", "a Bcc header was transmitted inside the message"
    )
    GAP = _medium("gap", "bytes of the connection were never captured")
    MESSAGE_TRUNCATED = _low(
        "message-truncated",
        "a message exceeded the kept size; size and sha256 still cover all of it",
    )
    ANOMALY = _low(
        "anomaly", "the peer broke the protocol (unknown reply, garbage, odd end of data)"
    )
    OVERLAP_CONFLICT = _medium(
        "overlap-conflict",
        "TCP bytes captured twice with different content (evasion or corruption)",
    )
    TLS_LEGACY_VERSION = _medium(
        "tls-legacy-version",
        "TLS below 1.2 negotiated (SSL 3.0, TLS 1.0, 1.1: deprecated, RFC 8996)",
    )
    TLS_NO_FORWARD_SECRECY = _low(
        "tls-no-forward-secrecy",
        "a TLS suite without forward secrecy (RSA key transport): the server's private key "
        "decrypts recorded traffic",
    )
