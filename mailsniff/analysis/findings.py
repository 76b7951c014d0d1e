"""Findings: what an analyst should look at in a finished session."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from mailsniff.analysis.bcc import compare_envelope, normalise_address
from mailsniff.analysis.sender import judge_from, list_context
from mailsniff.model import Address, AuthAttempt, Finding, Message, Protocol, Session

__all__ = ["analyse", "KINDS", "MAX_ANOMALY_FINDINGS", "SEVERITY"]

#: Every finding kind, with what it means (docs/jsonl.md lists the same).
KINDS: dict[str, str] = {
    "cleartext-credentials": "a password or bearer token crossed the network readable",
    "crackable-credentials": (
        "CRAM-MD5/APOP challenge and response, or an NTLM hash, captured: guessable offline"
    ),
    "auth-failed": "an authentication attempt was refused",
    "bcc": "accepted envelope recipients that appear in neither To nor Cc",
    "header-only": "addresses shown in To/Cc that were not envelope recipients of the transaction",
    "from-mismatch": "header From differs from MAIL FROM, the authenticated user, or Sender",
    "sender-rejected": "the server refused MAIL FROM",
    "recipient-rejected": "the server refused a RCPT TO",
    "message-rejected": "the server refused the message after DATA/BDAT (4xx/5xx)",
    "bcc-header-present": "a Bcc header was transmitted inside the message",
    "gap": "bytes of the connection were never captured",
    "message-truncated": "a message exceeded the kept size; size and sha256 still cover all of it",
    "anomaly": "the peer broke the protocol (unknown reply, garbage, odd end of data)",
    "overlap-conflict": "TCP bytes captured twice with different content (evasion or corruption)",
    "tls-legacy-version": "TLS below 1.2 negotiated (SSL 3.0, TLS 1.0, 1.1: deprecated, RFC 8996)",
    "tls-no-forward-secrecy": (
        "a TLS suite without forward secrecy (RSA key transport): the server's private key "
        "decrypts recorded traffic"
    ),
}
#: Anomalies of this prefix (reassembly bounds them) are findings of their own kind, outside
#: the anomaly cap.
_OVERLAP_PREFIX = "overlap-conflict: "
MAX_ANOMALY_FINDINGS = 20
#: Each kind's severity (info, low, medium, high) unless the finding sets its own: from-mismatch
#: is judged by its context (mailsniff.analysis.sender); kinds not listed are medium.
SEVERITY: dict[str, str] = {
    "cleartext-credentials": "high",
    "crackable-credentials": "high",
    "auth-failed": "low",
    "bcc": "info",
    "header-only": "low",
    "sender-rejected": "low",
    "recipient-rejected": "low",
    "message-rejected": "low",
    "bcc-header-present": "medium",
    "gap": "medium",
    "message-truncated": "low",
    "anomaly": "low",
    "tls-legacy-version": "medium",
    "tls-no-forward-secrecy": "low",
}


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
                "cleartext-credentials",
                f"{attempt.mechanism} credentials for {who}{how} sent in clear",
            )
        )
    elif attempt.response is not None and attempt.mechanism == "XOAUTH2":
        out.append(
            Finding("cleartext-credentials", f"XOAUTH2 bearer token for {who} sent in clear")
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
                "crackable-credentials",
                f"NTLM {attempt.hash_type} hash for {domain}{who} captured {what}",
            )
        )
    elif attempt.response is not None:
        out.append(
            Finding(
                "crackable-credentials",
                f"{attempt.mechanism} challenge and response for {who} captured",
            )
        )
    if attempt.success is False:
        out.append(Finding("auth-failed", f"{attempt.mechanism} as {who}: {attempt.reply or ''}"))


def _authenticated_user(session: Session) -> str | None:
    for attempt in reversed(session.auth):
        if attempt.success is True and attempt.username:
            return attempt.username
    return None


def _message_findings(message: Message, out: list[Finding], where: str) -> None:
    if message.bcc:
        out.append(
            Finding(
                "bcc-header-present",
                f"{where}: Bcc header transmitted, revealing {_addresses(message.bcc)}",
            )
        )
    if message.truncated:
        out.append(
            Finding(
                "message-truncated",
                f"{where}: {message.size} bytes, only the first part kept for parsing",
            )
        )


def _tls_findings(session: Session, out: list[Finding]) -> None:
    t = session.tls_info
    if t is None:
        return
    info = t.info
    if info.legacy_version:
        out.append(Finding("tls-legacy-version", f"{info.version_name} negotiated (below TLS 1.2)"))
    if info.forward_secrecy is False:
        out.append(
            Finding(
                "tls-no-forward-secrecy",
                f"{info.cipher_suite_name}: RSA key transport, no forward secrecy",
            )
        )


def analyse(session: Session, *, tls_from_ns: int | None = None) -> Session:
    """Fill bcc/header_only per transaction and the session's findings (replacing any).

    tls_from_ns: when TLS started on a connection whose plaintext is known (`send`, `pop`):
    credentials sent from then on crossed the network encrypted, not in clear.
    """
    out: list[Finding] = []
    for attempt in session.auth:
        in_tls = tls_from_ns is not None and attempt.ts_ns >= tls_from_ns
        _auth_findings(attempt, out, in_tls)
    user = _authenticated_user(session)
    for n, tx in enumerate(session.transactions, 1):
        where = f"transaction {n}"
        compare_envelope(tx)
        if tx.mail_from_reply is not None and tx.mail_from_reply[:1] in ("4", "5"):
            out.append(
                Finding("sender-rejected", f"MAIL FROM:<{tx.mail_from}>: {tx.mail_from_reply}")
            )
        for rcpt in tx.rcpts:
            if rcpt.status in ("rejected", "deferred"):
                out.append(Finding("recipient-rejected", f"RCPT TO:<{rcpt.address}>: {rcpt.reply}"))
        if tx.data_reply is not None and tx.data_reply[:1] in ("4", "5"):
            out.append(Finding("message-rejected", f"{where}: {tx.data_reply}"))
        if tx.bcc:
            out.append(
                Finding(
                    "bcc",
                    f"{where}: {len(tx.bcc)} recipient(s) in the envelope but not in To/Cc: "
                    + ", ".join(tx.bcc),
                )
            )
        if tx.header_only:
            out.append(
                Finding(
                    "header-only",
                    f"{where}: shown in To/Cc but not an accepted recipient: "
                    + ", ".join(tx.header_only),
                )
            )
        message = tx.message
        if message is None:
            continue
        _message_findings(message, out, where)
        senders = [a.address for a in message.from_ if a.address]
        sender_note = f" (Sender: {_addresses(message.sender)})" if message.sender else ""
        for header_from in senders:
            verdict = judge_from(header_from, tx.mail_from, user, message)
            if verdict is not None:
                out.append(
                    Finding(
                        "from-mismatch",
                        f"{where}: header From {header_from} differs from "
                        + " and ".join(verdict.reasons)
                        + sender_note
                        + f" [{verdict.context}]",
                        verdict.severity,
                    )
                )
    if session.protocol is not Protocol.SMTP:
        for retrieved in session.messages:
            where = retrieved.command
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
                        "from-mismatch",
                        f"{where}: header From {_addresses(message.from_)} differs from "
                        f"Sender {_addresses(true_senders)}" + (f" [{listed}]" if listed else ""),
                        "info" if listed else "low",
                    )
                )
    _tls_findings(session, out)
    for gap in session.gaps:
        out.append(
            Finding(
                "gap",
                f"{gap.length} {gap.direction.value} bytes never captured at offset {gap.offset}",
            )
        )
    anomalies = [a for a in session.anomalies if not a.startswith(_OVERLAP_PREFIX)]
    for anomaly in session.anomalies:
        if anomaly.startswith(_OVERLAP_PREFIX):
            out.append(Finding("overlap-conflict", anomaly[len(_OVERLAP_PREFIX) :]))
    for anomaly in anomalies[:MAX_ANOMALY_FINDINGS]:
        out.append(Finding("anomaly", anomaly))
    if len(anomalies) > MAX_ANOMALY_FINDINGS:
        extra = len(anomalies) - MAX_ANOMALY_FINDINGS
        out.append(Finding("anomaly", f"... and {extra} more anomalies"))
    session.findings = [
        f if f.severity else replace(f, severity=SEVERITY.get(f.kind, "medium")) for f in out
    ]
    return session
