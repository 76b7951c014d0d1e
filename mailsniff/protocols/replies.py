"""SMTP reply codes and enhanced status codes, in one table (RFC 5321 4.2, RFC 3463, RFC 2034)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from mailsniff.model import ReplyClass, outcome_of
from mailsniff.model import classify_reply as classify
from mailsniff.protocols.base import to_text

__all__ = [
    "REPLY_MEANINGS",
    "Reply",
    "ReplyLine",
    "ReplyClass",
    "ReplyCode",
    "classify",
    "is_positive",
    "is_negative",
    "parse_enhanced",
    "parse_line",
]


class ReplyCode(IntEnum):
    """The reply codes mailsniff's parser, client and tests refer to by name."""

    SERVICE_READY = 220  # RFC 5321 4.2.3; also "ready to start TLS" (RFC 3207 4)
    CLOSING = 221
    AUTH_SUCCEEDED = 235  # RFC 4954 6
    OK = 250
    USER_NOT_LOCAL_WILL_FORWARD = 251
    CANNOT_VRFY = 252
    AUTH_CHALLENGE = 334  # RFC 4954 4: server challenge, base64
    START_MAIL_INPUT = 354  # RFC 5321 4.1.1.4: end data with <CRLF>.<CRLF>
    SERVICE_NOT_AVAILABLE = 421
    MAILBOX_BUSY = 450
    LOCAL_ERROR = 451
    INSUFFICIENT_STORAGE = 452
    TLS_NOT_AVAILABLE = 454  # RFC 3207 4; also temporary authentication failure (RFC 4954 6)
    SYNTAX_ERROR = 500
    SYNTAX_ERROR_IN_PARAMETERS = 501  # also AUTH cancelled with "*" (RFC 4954 4)
    NOT_IMPLEMENTED = 502
    BAD_SEQUENCE = 503
    PARAMETER_NOT_IMPLEMENTED = 504
    AUTH_REQUIRED = 530  # RFC 4954 6 (also "must issue STARTTLS first", RFC 3207 4)
    AUTH_FAILED = 535  # RFC 4954 6
    MAILBOX_UNAVAILABLE = 550
    USER_NOT_LOCAL = 551
    EXCEEDED_STORAGE = 552
    MAILBOX_NAME_NOT_ALLOWED = 553
    TRANSACTION_FAILED = 554


#: What each named code means, for display next to a reply (RFC 5321 4.2.2 and 4.2.3).
REPLY_MEANINGS: dict[int, str] = {
    ReplyCode.SERVICE_READY: "service ready",
    ReplyCode.CLOSING: "closing connection",
    ReplyCode.AUTH_SUCCEEDED: "authentication succeeded",
    ReplyCode.OK: "completed",
    ReplyCode.USER_NOT_LOCAL_WILL_FORWARD: "user not local; will forward",
    ReplyCode.CANNOT_VRFY: "cannot verify user; will attempt delivery",
    ReplyCode.AUTH_CHALLENGE: "authentication challenge",
    ReplyCode.START_MAIL_INPUT: "start mail input",
    ReplyCode.SERVICE_NOT_AVAILABLE: "service not available, closing",
    ReplyCode.MAILBOX_BUSY: "mailbox unavailable (temporary)",
    ReplyCode.LOCAL_ERROR: "local error in processing",
    ReplyCode.INSUFFICIENT_STORAGE: "insufficient system storage",
    ReplyCode.TLS_NOT_AVAILABLE: "TLS or authentication temporarily unavailable",
    ReplyCode.SYNTAX_ERROR: "syntax error, command unrecognised",
    ReplyCode.SYNTAX_ERROR_IN_PARAMETERS: "syntax error in parameters or arguments",
    ReplyCode.NOT_IMPLEMENTED: "command not implemented",
    ReplyCode.BAD_SEQUENCE: "bad sequence of commands",
    ReplyCode.PARAMETER_NOT_IMPLEMENTED: "command parameter not implemented",
    ReplyCode.AUTH_REQUIRED: "authentication required",
    ReplyCode.AUTH_FAILED: "authentication credentials invalid",
    ReplyCode.MAILBOX_UNAVAILABLE: "mailbox unavailable",
    ReplyCode.USER_NOT_LOCAL: "user not local",
    ReplyCode.EXCEEDED_STORAGE: "exceeded storage allocation",
    ReplyCode.MAILBOX_NAME_NOT_ALLOWED: "mailbox name not allowed",
    ReplyCode.TRANSACTION_FAILED: "transaction failed",
}


@dataclass(slots=True, init=False)
class ReplyLine:
    """One line of a reply (RFC 5321 4.2): its code, its text, and whether another follows.
    One per server line, so its `__init__` is written out (protocols/base.py says why)."""

    code: int
    text: str  # after the code and its separator
    more: bool  # "-" after the code: a multi-line reply goes on

    def __init__(self, code: int, text: str, more: bool) -> None:
        self.code = code
        self.text = text
        self.more = more


# RFC 5321 4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
#                            Reply-code [ SP textstring ] CRLF
_LINE: Final = re.compile(rb"^([2-5][0-9][0-9])(?:([ -])(.*)|)$", re.DOTALL)


def parse_line(raw: bytes) -> ReplyLine | None:
    """A reply line without its ending (`250-PIPELINING`), or None when it is not one. The
    grammar the parser and the active client both read replies with."""
    m = _LINE.match(raw)
    if m is None:
        return None
    return ReplyLine(int(m.group(1)), to_text(m.group(3) or b""), m.group(2) == b"-")


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply: its code and each line's text (after the code and separator)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The first line as stored and shown: `550 No such user`."""
        return f"{self.code} {self.lines[0] if self.lines else ''}".rstrip()

    @property
    def reply_class(self) -> ReplyClass | None:
        return classify(self.code)

    @property
    def positive(self) -> bool:
        """2xx or 3xx: the command succeeded or goes on."""
        return self.reply_class in (
            ReplyClass.POSITIVE_COMPLETION,
            ReplyClass.POSITIVE_INTERMEDIATE,
        )

    @property
    def outcome(self) -> str:
        """'accepted', 'deferred', 'rejected' or 'unknown', as for a stored reply."""
        return outcome_of(self.reply_class)


def is_positive(code: int) -> bool:
    """2xx: the command was accepted (RFC 5321 4.2.1)."""
    return classify(code) is ReplyClass.POSITIVE_COMPLETION


def is_negative(code: int) -> bool:
    """4xx or 5xx: the command failed, for now or for good."""
    return classify(code) in (ReplyClass.TRANSIENT_NEGATIVE, ReplyClass.PERMANENT_NEGATIVE)


# RFC 3463 2: status-code = class "." subject "." detail
#   class = "2" / "4" / "5"; subject = 1*3digit; detail = 1*3digit
_ENHANCED: Final = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


def parse_enhanced(text: str) -> str | None:
    """The enhanced status code at the start of a reply's text (`2.1.0 Ok` -> `2.1.0`), or None."""
    m = _ENHANCED.match(text)
    return m.group(0) if m else None
