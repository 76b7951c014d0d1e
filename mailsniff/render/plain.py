"""`read --plain`: one record per line, tab-separated, for grep, awk and cut.

Each line starts with its record type and (for per-session records) the session id, then
`key=value` fields; every value goes through `safe_text`, so a tab, newline or escape sequence
inside captured text is written out (`\\t`, `\\n`, `\\x1b`) and never splits a record or reaches
the terminal. No padding, no box drawing, no wrapping, no trailing spaces.

    session  3  smtp  client=...  server=...  start=...  user=...  findings=bcc,from-mismatch
    auth     3  LOGIN  user=crazywill  password=...  result=ok
    rcpt     3  t1  bob@example.com  role=bcc  reply=250 OK
    finding  3  medium  from-mismatch  header From ... differs from MAIL FROM ...
    sent_copy  1  t1  copy=2/m1  mailbox=Sent  imap_uid=1  ...  bytes=differ
    sent_copy_rcpt  1  t1  dave@example.com  role=Bcc  envelope=accepted  sent_headers=-  ...
    summary  sessions=3  packets=147  ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from mailsniff.analysis.sent_copy import SentCopy
from mailsniff.analysis.summary import Summary
from mailsniff.model import Address, AuthAttempt, Message, Session, TranscriptLine
from mailsniff.render.text import format_duration, format_timestamp, safe_text

__all__ = ["finding_kinds", "live_lines", "session_lines", "summary_lines", "transcript_lines"]


def _line(*fields: object) -> str:
    return "\t".join(safe_text(str(f)) for f in fields).rstrip()


def _kv(key: str, value: object) -> str:
    return f"{key}={'-' if value is None or value == '' else value}"


def _addresses(addresses: Sequence[Address]) -> str:
    return ",".join(a.address for a in addresses if a.address) or "-"


def finding_kinds(session: Session) -> list[str]:
    """The kinds of a session's findings, each once, in the order first found."""
    return list(dict.fromkeys(f.kind for f in session.findings))


def _result(attempt: AuthAttempt) -> str:
    if attempt.cancelled:
        return "cancelled"
    return {True: "ok", False: "failed", None: "?"}[attempt.success]


def _message(session_id: int, where: str, message: Message) -> Iterator[str]:
    yield _line(
        "message",
        session_id,
        where,
        _kv("from", _addresses(message.from_)),
        _kv("to", _addresses(message.to)),
        _kv("cc", _addresses(message.cc)),
        _kv("subject", message.subject),
        _kv("size", message.size),
        _kv("message_id", message.message_id),
        *(["truncated"] if message.truncated else []),
    )
    for a in message.attachments:
        yield _line(
            "attachment",
            session_id,
            where,
            _kv("name", a.filename),
            _kv("type", a.content_type),
            _kv("size", a.size),
            _kv("sha256", a.sha256),
        )


def _sent_copy(session_id: int, link: SentCopy) -> Iterator[str]:
    """A Sent-copy link seen from one of its sessions, then one line per recipient."""
    if link.smtp.session == session_id:
        where, other = f"t{link.smtp.index + 1}", f"copy={link.imap.session}/m{link.imap.index + 1}"
    else:
        where, other = f"m{link.imap.index + 1}", f"sent={link.smtp.session}/t{link.smtp.index + 1}"
    yield _line(
        "sent_copy",
        session_id,
        where,
        other,
        _kv("mailbox", link.imap.mailbox),
        _kv("imap_uid", link.imap.imap_uid),
        _kv("outcome", link.imap.outcome),
        _kv("matched_by", link.matched_by),
        _kv("key", link.key),
        _kv("bytes", "identical" if link.identical else "differ"),
        _kv("sent_size", link.smtp.size),
        _kv("filed_size", link.imap.size),
        *([_kv("not_compared", link.recipients_dropped)] if link.recipients_dropped else []),
    )
    for r in link.recipients:
        yield _line(
            "sent_copy_rcpt",
            session_id,
            where,
            r.address,
            _kv("role", r.role),
            _kv("envelope", r.envelope),
            _kv("sent_headers", "/".join(r.sent_headers)),
            _kv("sent_copy_headers", "/".join(r.sent_copy_headers)),
        )


def session_lines(
    session: Session,
    *,
    summary_only: bool,
    transcript: bool,
    sent_copies: Sequence[SentCopy] = (),
) -> Iterator[str]:
    """The lines of one session: its `session` record, then (unless summary_only) its facts
    and the Sent-copy links it is one half of (analysis.sent_copy)."""
    sid = session.id
    users = list(dict.fromkeys(a.username for a in session.auth if a.username is not None))
    senders = list(dict.fromkeys(t.mail_from for t in session.transactions))
    rcpts = sum(len(t.rcpts) for t in session.transactions)
    messages = sum(1 for t in session.transactions if t.message is not None)
    tls = "implicit" if session.implicit_tls else "starttls" if session.tls else "no"
    yield _line(
        "session",
        sid,
        session.protocol,
        _kv("client", session.client),
        _kv("server", session.server),
        _kv("start", format_timestamp(session.start_ns)),
        _kv("duration", format_duration(session.end_ns - session.start_ns)),
        _kv("user", ",".join(users)),
        _kv("mail_from", ",".join(f"<{s}>" for s in senders)),
        _kv("rcpt", rcpts),
        _kv("messages", messages + len(session.messages)),
        _kv("tls", tls),
        _kv("complete", "yes" if session.complete else "no"),
        _kv("findings", ",".join(finding_kinds(session))),
    )
    if summary_only:
        return
    for attempt in session.auth:
        yield _line(
            "auth",
            sid,
            attempt.mechanism,
            _kv("user", attempt.username),
            _kv("password", attempt.password),
            *([_kv("response", attempt.response)] if attempt.response is not None else []),
            _kv("result", _result(attempt)),
            _kv("reply", attempt.reply),
        )
    for n, tx in enumerate(session.transactions, 1):
        where = f"t{n}"
        yield _line(
            "mail", sid, where, _kv("from", f"<{tx.mail_from}>"), _kv("reply", tx.mail_from_reply)
        )
        for rcpt in tx.rcpts:
            yield _line(
                "rcpt", sid, where, rcpt.address, _kv("role", rcpt.role), _kv("reply", rcpt.reply)
            )
        if tx.message is not None:
            yield from _message(sid, where, tx.message)
    for n, retrieved in enumerate(session.messages, 1):
        where = f"m{n}"
        yield _line(
            "retrieved",
            sid,
            where,
            _kv("command", retrieved.command),
            *(["partial"] if retrieved.partial else []),
        )
        yield from _message(sid, where, retrieved.message)
    for gap in session.gaps:
        yield _line("gap", sid, gap.direction, _kv("offset", gap.offset), _kv("length", gap.length))
    for finding in session.findings:
        yield _line("finding", sid, finding.severity or "-", finding.kind, finding.detail)
    for anomaly in session.anomalies:
        yield _line("anomaly", sid, anomaly.text)
    for link in sent_copies:
        yield from _sent_copy(sid, link)
    if transcript:
        yield from transcript_lines(sid, session.transcript)


def transcript_lines(session_id: int, lines: Iterable[TranscriptLine]) -> Iterator[str]:
    """One `line` record per dialogue line (`live --plain --transcript` writes them as they
    arrive, `read` after its session's other records)."""
    for t in lines:
        yield _line(
            "line",
            session_id,
            format_timestamp(t.ts_ns),
            t.direction,
            t.text,
            *([_kv("decoded", t.note)] if t.note else []),
        )


def summary_lines(
    summary: Summary, *, packets: int, filtered: int, warnings: Iterable[str]
) -> Iterator[str]:
    """The closing `summary` line, then one `warning` line each."""
    protocols = ",".join(f"{p}:{n}" for p, n in sorted(summary.by_protocol.items()))
    findings = ",".join(f"{k}:{n}" for k, n in sorted(summary.findings.items()))
    yield _line(
        "summary",
        _kv("sessions", summary.sessions),
        _kv("protocols", protocols),
        _kv("packets", packets),
        _kv("incomplete", summary.incomplete),
        _kv("messages", summary.messages),
        _kv("credentials", summary.credentials),
        _kv("bcc_recipients", summary.bcc_recipients),
        _kv("sent_copies", summary.sent_copies),
        _kv("filtered_out", filtered),
        _kv("findings", findings),
    )
    for warning in warnings:
        yield _line("warning", warning)


def live_lines(live: Mapping[str, object]) -> Iterator[str]:
    """`live --plain`: the capture's own `live` line after the summary (interface, filter,
    why it stopped, packets captured and dropped)."""
    yield _line("live", *(_kv(key, value) for key, value in live.items()))
