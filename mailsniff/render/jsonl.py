"""JSON Lines output: a mechanical mapping of Session records to the contract in docs/jsonl.md."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

import orjson

from mailsniff.analysis.sent_copy import CopySide, SentCopy
from mailsniff.model import (
    Address,
    Attachment,
    AuthAttempt,
    ImapState,
    Message,
    RetrievedMessage,
    Session,
    SessionTls,
    Transaction,
)
from mailsniff.render.text import format_timestamp

__all__ = [
    "add_sent_copy_refs",
    "dumps",
    "iso8601",
    "sent_copy_record",
    "session_record",
    "summary_record",
]

JsonObject = dict[str, Any]


def iso8601(ts_ns: int) -> str:
    """Nanoseconds since the epoch -> "2006-07-03T13:07:18.000000Z" (UTC, microseconds), or
    "@SECONDS.MICROS" outside years 1-9999 (`render.text.format_timestamp`, for every output)."""
    return format_timestamp(ts_ns)


def _address(a: Address) -> JsonObject:
    return {"name": a.name, "address": a.address}


def _addresses(addresses: list[Address]) -> list[JsonObject]:
    return [_address(a) for a in addresses]


def _attachment(a: Attachment) -> JsonObject:
    return {
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "disposition": a.disposition,
    }


def _message(m: Message) -> JsonObject:
    return {
        "from": _addresses(m.from_),
        "sender": _addresses(m.sender),
        "reply_to": _addresses(m.reply_to),
        "to": _addresses(m.to),
        "cc": _addresses(m.cc),
        "bcc": _addresses(m.bcc),
        "subject": m.subject,
        "date": m.date,
        "message_id": m.message_id,
        "size": m.size,
        "sha256": m.sha256,
        "attachments": [_attachment(a) for a in m.attachments],
        "headers": [[name, value] for name, value in m.headers],
        "truncated": m.truncated,
        "gap_bytes": m.gap_bytes,
        "defects": list(m.defects),
    }


def _auth(a: AuthAttempt) -> JsonObject:
    return {
        "mechanism": a.mechanism,
        "username": a.username,
        "password": a.password,
        "success": a.success,
        "reply": a.reply,
        "time": iso8601(a.ts_ns),
        "authzid": a.authzid,
        "challenge": a.challenge,
        "response": a.response,
        "not_base64": a.not_base64,
        "cancelled": a.cancelled,
        "domain": a.domain,
        "workstation": a.workstation,
        "hash_type": a.hash_type,
    }


def _transaction(t: Transaction) -> JsonObject:
    return {
        "mail_from": t.mail_from,
        "mail_from_reply": t.mail_from_reply,
        "rcpt_to": t.rcpt_to,
        "rcpt_accepted": t.rcpt_accepted,
        "data_reply": t.data_reply,
        "message": _message(t.message) if t.message is not None else None,
        "bcc": list(t.bcc),
        "header_only": list(t.header_only),
        "time": iso8601(t.ts_ns),
        "mail_from_params": dict(t.mail_from_params),
        "rcpts": [
            {
                "address": r.address,
                "reply": r.reply,
                "status": r.status,
                "params": dict(r.params),
                "role": r.role,
            }
            for r in t.rcpts
        ],
        "body_command": t.body_command,
    }


def _retrieved(r: RetrievedMessage) -> JsonObject:
    record: JsonObject = {
        "command": r.command,
        "number": r.number,
        "partial": r.partial,
        "message": _message(r.message),
        "time": iso8601(r.ts_ns),
    }
    if r.imap is not None:
        t = r.imap
        record["imap"] = {
            "source": t.source,
            "mailbox": t.mailbox,
            "uid": t.uid,
            "section": t.section,
            "item": t.item,
            "origin": t.origin,
            "flags": list(t.flags),
            "date": t.date,
            "outcome": t.outcome,
        }
    return record


def _imap(state: ImapState) -> JsonObject:
    def _id(fields: list[tuple[str, str | None]] | None) -> JsonObject | None:
        return None if fields is None else {k: v for k, v in fields}

    return {
        "client_id": _id(state.client_id),
        "server_id": _id(state.server_id),
        "preauth": state.preauth,
        "login_disabled": state.login_disabled,
        "compressed": state.compressed,
        "mailboxes": [
            {
                "name": m.name,
                "read_only": m.read_only,
                "ok": m.ok,
                "exists": m.exists,
                "recent": m.recent,
                "uidvalidity": m.uidvalidity,
                "uidnext": m.uidnext,
                "unseen": m.unseen,
                "time": iso8601(m.ts_ns),
            }
            for m in state.mailboxes
        ],
        "changes": [
            {
                "action": c.action,
                "mailbox": c.mailbox,
                "messages": c.messages,
                "uid": c.uid,
                "flags": list(c.flags),
                "operation": c.operation,
                "destination": c.destination,
                "ok": c.ok,
                "time": iso8601(c.ts_ns),
            }
            for c in state.changes
        ],
    }


def tls_record(t: SessionTls | None) -> JsonObject | None:
    """How the session's TLS was handled (None: no TLS on this connection)."""
    if t is None:
        return None
    return {
        "mode": t.mode,
        "version": t.version,
        "cipher_suite": t.cipher_suite,
        "sni": t.sni,
        "alpn": t.alpn,
        "alpn_offered": list(t.alpn_offered),
        "resumed": t.resumed,
        "forward_secrecy": t.forward_secrecy,
        "keylog": t.keylog,
        "keys_found": t.keys_found,
        "decrypted": t.decrypted,
        "reason": t.reason,
        "records_decrypted": t.records_decrypted,
        "bytes_decrypted": t.bytes_decrypted,
        "start_offset": {"client": t.client_offset, "server": t.server_offset},
        "problems": list(t.problems),
        "failures": [
            {"direction": f.direction.value, "offset": f.offset, "record": f.record}
            for f in t.failures
        ],
    }


def session_record(s: Session, *, transcript: bool = False) -> JsonObject:
    """The contract's "session" object (plus documented extra fields); --redact is applied to
    the Session before it gets here (mailsniff.export.redact)."""
    record: JsonObject = {
        "type": "session",
        "id": s.id,
        "protocol": str(s.protocol),
        "client": {"ip": s.client.ip, "port": s.client.port},
        "server": {"ip": s.server.ip, "port": s.server.port},
        "community_id": s.community_id,
        "uid": s.uid,
        "start": iso8601(s.start_ns),
        "end": iso8601(s.end_ns),
        "complete": s.complete,
        "gaps": [
            {"direction": g.direction.value, "offset": g.offset, "length": g.length} for g in s.gaps
        ],
        "banner": s.banner,
        "helo": s.helo,
        "tls": s.tls,
        "auth": [_auth(a) for a in s.auth],
        "transactions": [_transaction(t) for t in s.transactions],
        "messages": [_retrieved(r) for r in s.messages],
        "deleted": list(s.deleted),
        "findings": [
            {
                "kind": f.kind,
                "detail": f.detail,
                "severity": f.severity or "medium",
                "transaction": f.transaction,
                "message": f.message,
            }
            for f in s.findings
        ],
        "implicit_tls": s.implicit_tls,
        "capabilities": list(s.capabilities),
        "close_reason": s.close_reason,
        "handshake_seen": s.handshake_seen,
        "client_bytes": s.client_bytes,
        "server_bytes": s.server_bytes,
        "packets": s.packets,
        "mailbox_stats": [{"messages": n, "octets": o} for n, o in s.mailbox_stats],
        "anomalies": [a.text for a in s.anomalies],
        "tls_info": tls_record(s.tls_info),
    }
    if s.imap is not None:
        record["imap"] = _imap(s.imap)
    if transcript:
        record["transcript"] = [
            {
                "time": iso8601(line.ts_ns),
                "direction": line.direction.value,
                "text": line.text,
                "note": line.note,
                "decrypted": line.decrypted,
            }
            for line in s.transcript
        ]
        record["transcript_dropped"] = s.transcript_dropped
    return record


def _side(side: CopySide) -> JsonObject:
    where = "transaction" if side.protocol == "smtp" else "message"
    out: JsonObject = {"session": side.session, "uid": side.uid, where: side.index}
    if side.protocol != "smtp":
        out.update(
            mailbox=side.mailbox,
            imap_uid=side.imap_uid,
            flags=list(side.flags),
            outcome=side.outcome,
        )
    return out


def sent_copy_record(link: SentCopy) -> JsonObject:
    """A "sent_copy" record: an SMTP transaction and the IMAP APPEND of the same message."""
    return {
        "type": "sent_copy",
        "matched_by": link.matched_by,
        "key": link.key,
        "identical": link.identical,
        "smtp": _side(link.smtp),
        "imap": _side(link.imap),
        "recipients": [
            {
                "address": r.address,
                "role": r.role,
                "envelope": r.envelope,
                "sent_headers": list(r.sent_headers),
                "sent_copy_headers": list(r.sent_copy_headers),
                "text": r.text,
            }
            for r in link.recipients
        ],
        "recipients_dropped": link.recipients_dropped,
    }


def add_sent_copy_refs(record: JsonObject, links: Sequence[SentCopy]) -> None:
    """Point the session record's transactions / APPENDed messages at the other half of each
    link (the record written second can name the first; the first was written already)."""
    session = record["id"]
    for link in links:
        if link.smtp.session == session:
            ref = {"session": link.imap.session, "uid": link.imap.uid, "message": link.imap.index}
            record["transactions"][link.smtp.index].setdefault("sent_copy", []).append(ref)
        if link.imap.session == session:
            ref = {
                "session": link.smtp.session,
                "uid": link.smtp.uid,
                "transaction": link.smtp.index,
            }
            record["messages"][link.imap.index].setdefault("sent_copy", []).append(ref)


def summary_record(summary: JsonObject) -> JsonObject:
    return {"type": "summary", **summary}


#: Characters JSON allows raw inside strings but that must never be written as themselves:
#: DEL and the C1 controls (a terminal obeys CSI 0x9b, OSC 0x9d ...), the bidi overrides,
#: isolates and marks (UAX #9), the characters line-splitting readers (Python's
#: str.splitlines, JavaScript) take for line ends, and lone surrogates (no UTF-8 for them).
#: json.dumps already escapes C0 controls. (The surrogates' bounds by chr(): the compiled
#: build takes no lone surrogate in a literal.)
_MUST_ESCAPE: Final = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
    + chr(0xD800)
    + "-"
    + chr(0xDFFF)
    + "]"
)


#: json.dumps(record, ensure_ascii=False, separators=(",", ":")), made once.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(record: JsonObject) -> str:
    """The record as compact JSON, non-ASCII as itself: orjson's text (a tenth of the time of
    the stdlib encoder's), or the stdlib's for what orjson refuses (a lone surrogate, an
    integer past 64 bits). Both write the same text for a record's types (str, int, bool,
    None, lists, dicts with str keys): tests/render/test_jsonl.py compares them."""
    try:
        return orjson.dumps(record).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError
        return _ENCODER.encode(record)


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def dumps(record: JsonObject) -> str:
    """One line of JSON; non-ASCII kept as UTF-8; lone surrogates, C0/C1 controls, DEL, bidi
    controls and every character a reader may treat as a line break escaped as \\uXXXX, so a
    record is always one line and inert on a terminal (never raises)."""
    text = _encode(record)
    if text.isascii():  # known without a scan: only DEL can need escaping
        return text.replace("\x7f", "\\u007f")
    # Every character escaped is unprintable (Cc, Cf, Zl, Zp, Cs): the common case is one
    # C-speed pass of isprintable, faster than the regex's.
    if text.isprintable():
        return text
    return _MUST_ESCAPE.sub(_escape, text)
