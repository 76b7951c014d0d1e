"""Every credential seen (RFC 4954, 4616, 2195, 1939, 5034, 7628), deduplicated.

A credential is what one authentication attempt revealed: protocol, server, mechanism, username
and password (or the challenge and response of CRAM-MD5 / APOP). Attempts that reveal the same
things are one row, with whether it worked, first and last time seen, and how many times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsniff.model import AuthAttempt, Endpoint, Session

__all__ = ["Credential", "CredentialTable"]

#: (protocol, server, mechanism, username, password, authzid, challenge, response)
_Key = tuple[str, Endpoint, str, str | None, str | None, str | None, str | None, str | None]


@dataclass(slots=True)
class Credential:
    protocol: str
    server: Endpoint
    mechanism: str
    username: str | None
    password: str | None
    authzid: str | None
    challenge: str | None
    response: str | None
    first_ns: int
    last_ns: int
    count: int = 0
    succeeded: int = 0
    failed: int = 0
    domain: str | None = None  # NTLM
    hash_type: str | None = None  # NTLM: "NetNTLMv2" / "NetNTLMv1"
    #: the client addresses it was sent from, in order of first appearance
    clients: list[str] = field(default_factory=list)

    @property
    def worked(self) -> bool | None:
        """True if it ever worked, False if every answer seen refused it, None if unknown."""
        if self.succeeded:
            return True
        return False if self.failed else None


def _reveals(attempt: AuthAttempt) -> bool:
    return any(v is not None for v in (attempt.username, attempt.password, attempt.response))


class CredentialTable:
    """Accumulates credentials from finished sessions, keeping one row per distinct secret."""

    def __init__(self) -> None:
        self._rows: dict[_Key, Credential] = {}

    def add_session(self, session: Session) -> None:
        for attempt in session.auth:
            if not _reveals(attempt):
                continue
            ts = attempt.ts_ns or session.start_ns
            key: _Key = (
                str(session.protocol),
                session.server,
                attempt.mechanism,
                attempt.username,
                attempt.password,
                attempt.authzid,
                attempt.challenge,
                attempt.response,
            )
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = Credential(
                    protocol=str(session.protocol),
                    server=session.server,
                    mechanism=attempt.mechanism,
                    username=attempt.username,
                    password=attempt.password,
                    authzid=attempt.authzid,
                    challenge=attempt.challenge,
                    response=attempt.response,
                    first_ns=ts,
                    last_ns=ts,
                    domain=attempt.domain,
                    hash_type=attempt.hash_type,
                )
            if session.client.ip not in row.clients:
                row.clients.append(session.client.ip)
            row.first_ns = min(row.first_ns, ts)
            row.last_ns = max(row.last_ns, ts)
            row.count += 1
            if attempt.success is True:
                row.succeeded += 1
            elif attempt.success is False:
                row.failed += 1

    def rows(self) -> list[Credential]:
        """In order of first appearance."""
        return sorted(self._rows.values(), key=lambda c: (c.first_ns, c.server.ip, c.mechanism))
