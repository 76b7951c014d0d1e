"""The closing summary: counts of facts established elsewhere, in one record every output shows.

The console's summary panel, live capture's panel and the JSON `summary` record all read a
`Summary`, so their counts agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mailsniff.model import AuthAttempt, Session

__all__ = ["Summary", "gives_credentials"]


def gives_credentials(attempt: AuthAttempt) -> bool:
    """Whether an attempt handed over something an attacker can use: a password, or a response
    (CRAM-MD5/APOP digest, bearer token, NTLM hash). A user name alone (POP3 `USER` without
    `PASS`) is not a credential."""
    return attempt.password is not None or bool(attempt.response)


@dataclass(slots=True, init=False)
class Summary:
    """Running counts over the sessions shown, so streaming output need not keep sessions.

    A --jobs worker sends one per session and the parent merges it, so its `__init__`,
    `__reduce__` and `merge` are written out: the compiled build builds and adds them natively
    (the generated `__init__` and a loop over the fields ran interpreted, the parent's largest
    cost per session)."""

    sessions: int
    by_protocol: dict[str, int]
    messages: int
    credentials: int
    bcc_recipients: int
    gaps: int
    incomplete: int
    #: Findings by kind.
    findings: dict[str, int]
    #: SMTP messages matched with the client's own copy filed by IMAP APPEND (across sessions:
    #: counted by analysis.sent_copy.SentCopies, not by `add`).
    sent_copies: int

    def __init__(
        self,
        sessions: int = 0,
        by_protocol: dict[str, int] | None = None,
        messages: int = 0,
        credentials: int = 0,
        bcc_recipients: int = 0,
        gaps: int = 0,
        incomplete: int = 0,
        findings: dict[str, int] | None = None,
        sent_copies: int = 0,
    ) -> None:
        self.sessions = sessions
        self.by_protocol = {} if by_protocol is None else by_protocol
        self.messages = messages
        self.credentials = credentials
        self.bcc_recipients = bcc_recipients
        self.gaps = gaps
        self.incomplete = incomplete
        self.findings = {} if findings is None else findings
        self.sent_copies = sent_copies

    @classmethod
    def of(cls, sessions: Iterable[Session]) -> Summary:
        summary = cls()
        for s in sessions:
            summary.add(s)
        return summary

    def add(self, s: Session) -> None:
        self.sessions += 1
        protocol = str(s.protocol)
        self.by_protocol[protocol] = self.by_protocol.get(protocol, 0) + 1
        self.messages += sum(1 for t in s.transactions if t.message is not None)
        self.messages += len(s.messages)
        self.credentials += sum(1 for a in s.auth if gives_credentials(a))
        self.bcc_recipients += sum(len(t.bcc) for t in s.transactions)
        self.gaps += len(s.gaps)
        self.incomplete += 0 if s.complete else 1
        for f in s.findings:
            self.findings[str(f.kind)] = self.findings.get(str(f.kind), 0) + 1

    def __reduce__(self) -> tuple[type[Summary], tuple[Any, ...]]:
        # Its fields in order (a dataclass pickles through copyreg and an interpreted
        # __getstate__, ten times as slow each way).
        return Summary, (
            self.sessions,
            self.by_protocol,
            self.messages,
            self.credentials,
            self.bcc_recipients,
            self.gaps,
            self.incomplete,
            self.findings,
            self.sent_copies,
        )

    def merge(self, other: Summary) -> None:
        """Add the counts of `other` (made elsewhere: a --jobs worker's, for one session)."""
        self.sessions += other.sessions
        _add_counts(self.by_protocol, other.by_protocol)
        self.messages += other.messages
        self.credentials += other.credentials
        self.bcc_recipients += other.bcc_recipients
        self.gaps += other.gaps
        self.incomplete += other.incomplete
        _add_counts(self.findings, other.findings)
        self.sent_copies += other.sent_copies


def _add_counts(mine: dict[str, int], theirs: dict[str, int]) -> None:
    for key, value in theirs.items():
        mine[key] = mine.get(key, 0) + value
