"""Was this sender forged? Header From against MAIL FROM and the authenticated account.

A header From that differs from the envelope sender is ordinary for mailing lists (the envelope is
the list's bounce address, RFC 2369 List-* headers present), VERP (the recipient encoded in the
bounce address), SRS (RFC-less Sender Rewriting Scheme of forwarders: `SRS0=...`) and BATV
(`prvs=tag=user`). So each mismatch gets a severity from its context:

* info: the envelope is a list, VERP, SRS or null sender; the differing address explains itself.
* low: envelope sender and header From in the same domain (a role or bounce mailbox).
* medium: envelope sender in another domain, no list context (forwarding, an email service
  provider, or forgery: check SPF/DKIM/DMARC); or the authenticated account sends as another
  mailbox of its own domain (alias, shared or delegated mailbox, or forgery); or a bare login
  whose domain cannot be known sends as someone else.
* high: header From in another domain than the authenticated account.

A bare login (`crazywill`) owns the header From whose local part it is; its domain is taken from
MAIL FROM when the login is MAIL FROM's local part. Domains compare by their last two labels
(`mail.example.com` is `example.com`), a deliberate approximation without a public-suffix list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mailsniff.analysis.bcc import normalise_address
from mailsniff.model import Message

__all__ = ["SEVERITIES", "FromVerdict", "judge_from", "list_context"]

#: Severity levels, lowest first.
SEVERITIES = ("info", "low", "medium", "high")

# list-bounces+bob=example.com@..., bounce-17-bob=x.org@...
_VERP: Final = re.compile(r"[+\-][^@]*=")
_BATV: Final = re.compile(r"^prvs=[^=]+=", re.IGNORECASE)
_LIST_LOCAL: Final = re.compile(r"(-bounces?|-owner|-request|^owner-|^bounces?)($|[+\-=.])")


@dataclass(slots=True, frozen=True)
class FromVerdict:
    reasons: list[str]  # "MAIL FROM <...>", "authenticated user ..."
    severity: str  # one of SEVERITIES
    context: str | None  # why that severity, for the detail


def _split(address: str) -> tuple[str, str]:
    local, _, domain = normalise_address(address).rpartition("@")
    return (local, domain) if local else (domain, "")


def _org(domain: str) -> str:
    return ".".join(domain.rstrip(".").split(".")[-2:])


def _header(message: Message, name: str) -> str | None:
    for key, value in message.headers:
        if key.strip().lower() == name:
            return value.strip()
    return None


def list_context(mail_from: str, message: Message) -> str | None:
    """Why the envelope sender is expected to differ from header From, or None."""
    local, _ = _split(mail_from)
    if local.startswith(("srs0=", "srs1=")):
        return "SRS-rewritten envelope of a forwarder"
    list_id = _header(message, "list-id")
    if list_id:
        return f"mailing list, List-Id {list_id}"
    if _header(message, "list-unsubscribe") or _header(message, "list-post"):
        return "mailing list (List-* headers)"
    if _VERP.search(local):
        return "VERP bounce address"
    precedence = (_header(message, "precedence") or "").lower()
    if precedence in ("list", "bulk"):
        return f"Precedence: {precedence}"
    if _LIST_LOCAL.search(local):
        return "list or bounce envelope address"
    return None


def _strip_batv(address: str) -> str:
    local, domain = _split(address)
    return f"{_BATV.sub('', local)}@{domain}" if domain else local


def judge_from(
    header_from: str, mail_from: str, user: str | None, message: Message
) -> FromVerdict | None:
    """Compare one header From address with the envelope and the authenticated user."""
    reasons: list[str] = []
    levels: list[tuple[int, str | None]] = []
    f_local, f_domain = _split(header_from)
    if mail_from and _strip_batv(mail_from) != normalise_address(header_from):
        reasons.append(f"MAIL FROM <{mail_from}>")
        m_domain = _split(mail_from)[1]
        context = list_context(mail_from, message)
        if context is not None:
            levels.append((0, context))
        elif _org(m_domain) == _org(f_domain):
            levels.append((1, "envelope sender in the same domain"))
        else:
            levels.append((2, "envelope sender in another domain, no list context"))
    if user is not None:
        u_local, u_domain = _split(user.rpartition("\\")[2])  # NTLM DOMAIN\user
        if not u_domain:  # a bare login: its domain is MAIL FROM's when it is MAIL FROM's user
            m_local, m_domain = _split(mail_from) if mail_from else ("", "")
            u_domain = m_domain if m_local == u_local else ""
        owns = u_local == f_local and (not u_domain or _org(u_domain) == _org(f_domain))
        if not owns:
            reasons.append(f"authenticated user {user}")
            if not u_domain:
                levels.append((2, "a bare login sends as another user"))
            elif _org(u_domain) == _org(f_domain):
                levels.append((2, "another mailbox of the authenticated account's domain"))
            else:
                levels.append((3, "header From in another domain than the authenticated account"))
    if not reasons:
        return None
    level, context = max(levels, key=lambda item: item[0])
    return FromVerdict(reasons, SEVERITIES[level], context)
