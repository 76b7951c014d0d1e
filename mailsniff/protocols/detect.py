"""Telling a mail dialogue on an unknown port by its first bytes (greeting, then client hello)."""

from __future__ import annotations

import re

from mailsniff.model import Protocol

__all__ = ["detect_greeting", "detect_hello", "may_be_smtp_greeting"]

# RFC 5321 4.1.1.1 / RFC 2033 4.1: the client's first command after the greeting.
_HELLO_VERBS = (b"EHLO", b"HELO", b"LHLO")
_HELLO = re.compile(rb"(?:EHLO|HELO|LHLO)[ \t\r\n]", re.IGNORECASE)


def detect_greeting(payload: bytes) -> Protocol | None:
    """Recognise a server greeting as the first payload of a flow on an unknown port.

    SMTP: `220 <domain> ... SMTP/ESMTP ...` (RFC 5321 4.2, the greeting names the service in
    practice; `220-` starts a multi-line one). POP3: `+OK` (RFC 1939 4). A `220` greeting that
    does not name SMTP (FTP's too) is told by the client's first line: see `detect_hello`.
    """
    line = payload[:512].split(b"\n", 1)[0].upper()
    if line.startswith((b"220 ", b"220-")) and b"SMTP" in line:
        return Protocol.SMTP
    if line.startswith(b"+OK"):
        return Protocol.POP3
    return None


def may_be_smtp_greeting(payload: bytes) -> bool:
    """A `220` greeting that does not say which service it is (`220 Greetings`)."""
    return payload[:4] in (b"220 ", b"220-")


def detect_hello(first: bytes) -> bool | None:
    """Whether a client's first bytes after a `220` greeting are an SMTP hello (EHLO, HELO,
    LHLO); None while too few bytes have come to tell."""
    if _HELLO.match(first):
        return True
    head = first.upper()
    if len(head) <= 4 and any(v.startswith(head) for v in _HELLO_VERBS):
        return None
    return False
