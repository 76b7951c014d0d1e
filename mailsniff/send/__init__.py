"""Active side: send mail over SMTP (RFC 5321), look up MX (RFC 5321 5.1, 7505), read POP3."""

from __future__ import annotations

from mailsniff.errors import MailsniffError
from mailsniff.status import ExitStatus

__all__ = ["NetworkError", "RejectedError"]


class NetworkError(MailsniffError):
    """The server could not be reached or the dialogue broke off (DNS, refused, timeout, TLS)."""

    exit_status = ExitStatus.NETWORK


class RejectedError(MailsniffError):
    """The server answered, and said no (4xx/5xx, -ERR, authentication failed)."""

    exit_status = ExitStatus.REJECTED
