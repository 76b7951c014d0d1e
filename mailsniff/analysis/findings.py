"""Findings: what an analyst should look at in a finished session."""

from __future__ import annotations

from collections.abc import Iterable

from mailsniff.analysis.bcc import compare_envelope, normalise_address
from mailsniff.analysis.ids import identify
from mailsniff.analysis.kinds import FindingKind
from mailsniff.analysis.sender import judge_from, list_context
from mailsniff.limits import MAX_ANOMALY_FINDINGS
from mailsniff.model import (
    Address,
    AnomalyKind,
    AuthAttempt,
    Finding,
    Message,
    Session,
    reply_failed,
)

__all__ = ["analyse", "authenticated_user", "KINDS", "MAX_ANOMALY_FINDINGS", "SEVERITY"]

#: Every finding kind, with what it means, and its usual severity (from FindingKind).
KINDS: dict[str, str] = {k.value: k.meaning for k in FindingKind}
SEVERITY: dict[str, str] = {k.value: k.severity.value for k in FindingKind}


def _addresses(addresses: Iterable[Address]) -> str:
    return ", ".join(a.address for a in addresses if a.address) or "(none)"


def _auth_findings(attempt: AuthAttempt, out: list[Finding], in_tls: bool = False) -> None:
    who = attempt.username if attempt.username is not None else "(unknown user)"
    if in_tls:
        pass  # sent inside TLS: only mailsniff's own connections see such credentials
    elif attempt.password is not None:
        how = " typed without base64" if attempt.not_base64 else ""
        out.append(
            Finding(
                FindingKind.CLEARTEXT_CREDENTIALS,
                f"{attempt.mechanism} credentials for {who}{how} sent in clear",
            )
        )
    elif attempt.response is not None and attempt.mechanism == "XOAUTH2":
        out.append(
            Finding(
                FindingKind.CLEARTEXT_CREDENTIALS, f"XOAUTH2 bearer token for {who} sent in clear"
            )
        )
    elif attempt.hash_type in ("NetNTLMv2", "NetNTLMv1"):
        domain = f"{attempt.domain}\\" if attempt.domain else ""
        mode = 5600 if attempt.hash_type == "NetNTLMv2" else 5500
        what = (
            f"(hashcat -m {mode})"
            if attempt.response is not None
            else "(server challenge not captured: not crackable as is)"
        )
        out.append(
            Finding(
                FindingKind.CRACKABLE_CREDENTIALS,
                f"NTLM {attempt.hash_type} hash for {domain}{who} captured {what}",
            )
        )
    elif attempt.response is not None:
        out.append(
            Finding(
                FindingKind.CRACKABLE_CREDENTIALS,
                f"{attempt.mechanism} challenge and response for {who} captured",
            )
        )
    if attempt.success is False:
        out.append(
            Finding(FindingKind.AUTH_FAILED, f"{attempt.mechanism} as {who}: {attempt.reply or ''}")
        )


def authenticated_user(session: Session) -> str | None:
    """The user of the session's last successful authentication, if any."""
    for attempt in reversed(session.auth):
        if attempt.success is True and attempt.username:
            return attempt.username
    return None


def _message_findings(message: Message, out: list[Finding], where: str) -> None:
    if message.bcc:
        out.append(
            Finding(
                FindingKind.BCC_HEADER_PRESENT,
                f"{where}: Bcc header transmitted, revealing {_addresses(message.bcc)}",
            )
        )
    if message.truncated:
        out.append(
            Finding(
                FindingKind.MESSAGE_TRUNCATED,
                f"{where}: {message.size} bytes, only the first part kept for parsing",
            )
        )


def _refer(
    out: list[Finding], first: int, *, transaction: int | None = None, message: int | None = None
) -> None:
    """Tie the findings from `first` on to the transaction / retrieved message they are about."""
    out[first:] = [
        Finding(f.kind, f.detail, f.severity, transaction=transaction, message=message)
        for f in out[first:]
    ]


def _imap_findings(session: Session, out: list[Finding], tls_from_ns: int | None) -> None:
    """IMAP: a login the server said it refuses in clear; messages deleted or expunged."""
    state = session.imap
    assert state is not None
    since = state.login_disabled_ns
    if since is not None:
        for attempt in session.auth:
            in_tls = tls_from_ns is not None and attempt.ts_ns >= tls_from_ns
            if attempt.ts_ns >= since and not in_tls:
                out.append(
                    Finding(
                        FindingKind.LOGIN_DISABLED_IGNORED,
                        f"{attempt.mechanism} for {attempt.username} sent after the server "
                        "advertised LOGINDISABLED",
                    )
                )
    deleted = [
        c
        for c in state.changes
        if c.action == "store"
        and "\\DELETED" in (f.upper() for f in c.flags)
        and c.operation != "-"
    ]
    expunged = [c for c in state.changes if c.action == "expunge"]
    if deleted or expunged:
        parts = []
        if deleted:
            sets = ", ".join(f"{c.mailbox or '?'} {c.messages}" for c in deleted[:10])
            parts.append(f"marked \\Deleted: {sets}")
        if expunged:
            parts.append(f"{len(expunged)} expunged")
        out.append(Finding(FindingKind.MESSAGES_EXPUNGED, "; ".join(parts)))


def _tls_findings(session: Session, out: list[Finding]) -> None:
    t = session.tls_info
    if t is None:
        return
    if t.legacy_version:
        out.append(
            Finding(FindingKind.TLS_LEGACY_VERSION, f"{t.version} negotiated (below TLS 1.2)")
        )
    if t.forward_secrecy is False:
        out.append(
            Finding(
                FindingKind.TLS_NO_FORWARD_SECRECY,
                f"{t.cipher_suite}: RSA key transport, no forward secrecy",
            )
        )


def analyse(session: Session, *, tls_from_ns: int | None = None) -> Session:
    """Fill bcc/header_only per transaction and the session's findings (replacing any).

    tls_from_ns: when TLS started on a connection whose plaintext is known (`send`, `pop`):
    credentials sent from then on crossed the network encrypted, not in clear.
    """
    identify(session)
    out: list[Finding] = []
    for attempt in session.auth:
        in_tls = tls_from_ns is not None and attempt.ts_ns >= tls_from_ns
        _auth_findings(attempt, out, in_tls)
    user = authenticated_user(session)
    for n, tx in enumerate(session.transactions, 1):
        where = f"transaction {n}"
        first = len(out)
        compare_envelope(tx)
        if reply_failed(tx.mail_from_reply):
            out.append(
                Finding(
                    FindingKind.SENDER_REJECTED, f"MAIL FROM:<{tx.mail_from}>: {tx.mail_from_reply}"
                )
            )
        for rcpt in tx.rcpts:
            if rcpt.status in ("rejected", "deferred"):
                out.append(
                    Finding(
                        FindingKind.RECIPIENT_REJECTED, f"RCPT TO:<{rcpt.address}>: {rcpt.reply}"
                    )
                )
        if reply_failed(tx.data_reply):
            out.append(Finding(FindingKind.MESSAGE_REJECTED, f"{where}: {tx.data_reply}"))
        if tx.bcc:
            out.append(
                Finding(
                    FindingKind.BCC,
                    f"{where}: {len(tx.bcc)} recipient(s) in the envelope but not in To/Cc: "
                    + ", ".join(tx.bcc),
                )
            )
        if tx.header_only:
            out.append(
                Finding(
                    FindingKind.HEADER_ONLY,
                    f"{where}: shown in To/Cc but not an accepted recipient: "
                    + ", ".join(tx.header_only),
                )
            )
        message = tx.message
        if message is None:
            _refer(out, first, transaction=n)
            continue
        _message_findings(message, out, where)
        senders = [a.address for a in message.from_ if a.address]
        sender_note = f" (Sender: {_addresses(message.sender)})" if message.sender else ""
        for header_from in senders:
            verdict = judge_from(header_from, tx.mail_from, user, message)
            if verdict is not None:
                out.append(
                    Finding(
                        FindingKind.FROM_MISMATCH,
                        f"{where}: header From {header_from} differs from "
                        + " and ".join(verdict.reasons)
                        + sender_note
                        + f" [{verdict.context}]",
                        verdict.severity,
                    )
                )
        _refer(out, first, transaction=n)
    for m, retrieved in enumerate(session.messages, 1):
        where = retrieved.command
        first = len(out)
        message = retrieved.message
        _message_findings(message, out, where)
        froms = {normalise_address(a.address) for a in message.from_ if a.address}
        true_senders = [a for a in message.sender if a.address]
        if (
            froms
            and true_senders
            and any(normalise_address(s.address) not in froms for s in true_senders)
        ):
            # RFC 5322 3.6.2: Sender names who sent it on From's behalf (a secretary, a
            # list); the pair is worth showing, not an accusation by itself.
            listed = list_context(true_senders[0].address, message)
            out.append(
                Finding(
                    FindingKind.FROM_MISMATCH,
                    f"{where}: header From {_addresses(message.from_)} differs from "
                    f"Sender {_addresses(true_senders)}" + (f" [{listed}]" if listed else ""),
                    "info" if listed else "low",
                )
            )
        _refer(out, first, message=m)
    if session.imap is not None:
        _imap_findings(session, out, tls_from_ns)
    _tls_findings(session, out)
    for gap in session.gaps:
        out.append(
            Finding(
                FindingKind.GAP,
                f"{gap.length} {gap.direction.value} bytes never captured at offset {gap.offset}",
            )
        )
    # Overlap conflicts (reassembly bounds them) are findings of their own kind, outside the cap.
    anomalies = [a for a in session.anomalies if a.kind != AnomalyKind.OVERLAP_CONFLICT]
    for anomaly in session.anomalies:
        if anomaly.kind == AnomalyKind.OVERLAP_CONFLICT:
            out.append(Finding(FindingKind.OVERLAP_CONFLICT, anomaly.detail))
    for anomaly in anomalies[:MAX_ANOMALY_FINDINGS]:
        out.append(Finding(FindingKind.ANOMALY, anomaly.text))
    if len(anomalies) > MAX_ANOMALY_FINDINGS:
        extra = len(anomalies) - MAX_ANOMALY_FINDINGS
        out.append(Finding(FindingKind.ANOMALY, f"... and {extra} more anomalies"))
    # (Built, not dataclasses.replace'd: replace looks the fields up for every finding.)
    session.findings = [
        f
        if f.severity
        else Finding(f.kind, f.detail, SEVERITY.get(f.kind, "medium"), f.transaction, f.message)
        for f in out
    ]
    return session
