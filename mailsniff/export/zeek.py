"""Zeek-style logs: smtp.log (Zeek's columns), pop3.log, imap.log and files.log, as TSV or JSON.

A session sink: `ZeekLogs.open(folder, json=...)`, `session_done(session)` for each finished
session, `close()`. Rows are written as sessions finish (nothing is kept), so memory stays
constant; a log file is created with its first row, as Zeek does.

smtp.log has one row per mail transaction (MAIL FROM), with Zeek's columns and types
(base/protocols/smtp/main.zeek), plus one row with tls=T for an accepted STARTTLS, as Zeek
logs it. Where mailsniff knows a fact differently (see docs/zeek-logs.md): `ts` is the time of
MAIL FROM, header values are RFC 2047-decoded, `uid`/`fuids` are mailsniff's reproducible ids.
pop3.log is mailsniff's own, in the same style: one row per RETR/TOP (or one per session that
retrieved nothing). imap.log likewise: one row per message fetched or appended, with the
columns Zeek's IMAP analyzer knows (capabilities, tls) where they exist. files.log has one row per
message (message/rfc822) and per attachment.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mailsniff.analysis.ids import file_uid
from mailsniff.errors import MailsniffError
from mailsniff.model import Message, Protocol, Session, Transaction, reply_failed
from mailsniff.status import ExitStatus

__all__ = ["FILES_FIELDS", "IMAP_FIELDS", "POP3_FIELDS", "SMTP_FIELDS", "ZeekLogError", "ZeekLogs"]

Value = str | int | bool | list[str] | list[int] | None

#: The columns every Zeek application log opens with: time, uid, the conn id, trans_depth.
_TRANSACTION_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("trans_depth", "count"),
)

#: (name, Zeek type) in Zeek's order.
SMTP_FIELDS: tuple[tuple[str, str], ...] = (
    *_TRANSACTION_FIELDS,
    ("helo", "string"),
    ("mailfrom", "string"),
    ("rcptto", "set[string]"),
    ("date", "string"),
    ("from", "string"),
    ("to", "set[string]"),
    ("cc", "set[string]"),
    ("reply_to", "string"),
    ("msg_id", "string"),
    ("in_reply_to", "string"),
    ("subject", "string"),
    ("x_originating_ip", "addr"),
    ("first_received", "string"),
    ("second_received", "string"),
    ("last_reply", "string"),
    ("path", "vector[addr]"),
    ("user_agent", "string"),
    ("tls", "bool"),
    ("fuids", "vector[string]"),
)

POP3_FIELDS: tuple[tuple[str, str], ...] = (
    *_TRANSACTION_FIELDS,
    ("banner", "string"),
    ("user", "string"),
    ("auth_mechanism", "string"),
    ("auth_success", "bool"),
    ("command", "string"),
    ("msg_number", "count"),
    ("partial", "bool"),
    ("size", "count"),
    ("date", "string"),
    ("from", "string"),
    ("to", "set[string]"),
    ("cc", "set[string]"),
    ("msg_id", "string"),
    ("subject", "string"),
    ("deleted", "vector[count]"),
    ("tls", "bool"),
    ("fuids", "vector[string]"),
)

IMAP_FIELDS: tuple[tuple[str, str], ...] = (
    *_TRANSACTION_FIELDS,
    ("banner", "string"),
    ("capabilities", "set[string]"),
    ("client_id", "string"),
    ("user", "string"),
    ("auth_mechanism", "string"),
    ("auth_success", "bool"),
    ("command", "string"),
    ("mailbox", "string"),
    ("msg_uid", "count"),
    ("msg_number", "count"),
    ("section", "string"),
    ("partial", "bool"),
    ("flags", "set[string]"),
    ("size", "count"),
    ("date", "string"),
    ("from", "string"),
    ("to", "set[string]"),
    ("cc", "set[string]"),
    ("bcc", "set[string]"),
    ("msg_id", "string"),
    ("subject", "string"),
    ("expunged", "count"),
    ("tls", "bool"),
    ("fuids", "vector[string]"),
)

FILES_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"),
    ("fuid", "string"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("source", "string"),
    ("depth", "count"),
    ("analyzers", "set[string]"),
    ("mime_type", "string"),
    ("filename", "string"),
    ("duration", "interval"),
    ("local_orig", "bool"),
    ("is_orig", "bool"),
    ("seen_bytes", "count"),
    ("total_bytes", "count"),
    ("missing_bytes", "count"),
    ("overflow_bytes", "count"),
    ("timedout", "bool"),
    ("parent_fuid", "string"),
    ("md5", "string"),
    ("sha1", "string"),
    ("sha256", "string"),
)

_LOGS = {"smtp": SMTP_FIELDS, "pop3": POP3_FIELDS, "imap": IMAP_FIELDS, "files": FILES_FIELDS}


class ZeekLogError(MailsniffError):
    """The log folder or a log file cannot be created or written."""

    exit_status = ExitStatus.WRITE_FAILED


# --------------------------------------------------------------------------- formatting


def _zeek_time(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    seconds, rest = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{seconds}.{rest // 1000:06d}"


def _escape(text: str, extra: str = "") -> str:
    """Zeek's ASCII escaping: control and format characters (and the separators) as \\xNN."""
    out: list[str] = []
    for ch in text:
        if ch == "\\" or ch == "\t" or ch in extra or unicodedata.category(ch)[0] == "C":
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append(ch)
    escaped = "".join(out)
    if escaped in ("-", "(empty)"):  # would read back as unset / empty
        return "\\x" + f"{ord(escaped[0]):02x}" + escaped[1:]
    return escaped


def _tsv_value(value: Value, kind: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, list):
        if not value:
            return "(empty)"
        return ",".join(_escape(str(v), ",") for v in value)
    if kind == "time" and isinstance(value, int):
        return _zeek_time(value)
    if isinstance(value, int):
        return str(value)
    return _escape(value) if value else "(empty)"


def _json_value(value: Value, kind: str) -> Any:
    if kind == "time" and isinstance(value, int) and not isinstance(value, bool):
        return value / 1e9
    return value


def _header_time() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())


@dataclass(slots=True)
class _Log:
    handle: IO[str]
    fields: tuple[tuple[str, str], ...]


# --------------------------------------------------------------------------- message facts

_IPV4 = re.compile(r"(?<![0-9A-Za-z.:])(\d{1,3}(?:\.\d{1,3}){3})(?![0-9A-Za-z.:])")
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z.:])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{1,15})(?![0-9A-Za-z:])"
)


def _ip_addresses(text: str) -> list[str]:
    """Valid IP addresses written in `text`, in order (Zeek's extract_ip_addresses)."""
    found: list[tuple[int, str]] = []
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            raw = m.group(1).removeprefix("IPv6:").removeprefix("ipv6:")
            try:
                found.append((m.start(1), str(ipaddress.ip_address(raw))))
            except ValueError:
                continue
    return [ip for _, ip in sorted(found)]


def _split_addresses(value: str) -> list[str]:
    """A To/Cc value split at commas outside quotes and angle brackets, trimmed."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    angle = 0
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle += 1
        elif ch == ">" and not quoted and angle:
            angle -= 1
        elif ch == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


@dataclass(slots=True)
class _Headers:
    """The header facts Zeek's smtp.log carries, taken from a message's header list the way
    Zeek's script does (the last one wins; To/Cc accumulate; Received in order)."""

    date: str | None = None
    from_: str | None = None
    to: list[str] | None = None
    cc: list[str] | None = None
    reply_to: str | None = None
    msg_id: str | None = None
    in_reply_to: str | None = None
    subject: str | None = None
    x_originating_ip: str | None = None
    first_received: str | None = None
    second_received: str | None = None
    user_agent: str | None = None
    received_ips: list[str] | None = None


def _add_unique(target: list[str], values: Iterable[str]) -> None:
    for v in values:
        if v not in target:
            target.append(v)


def _headers(message: Message | None) -> _Headers:
    h = _Headers()
    if message is None:
        return h
    ips: list[str] = []
    for name, value in message.headers:
        match name.lower():
            case "date":
                h.date = value
            case "from":
                h.from_ = value
            case "to":
                h.to = h.to if h.to is not None else []
                _add_unique(h.to, _split_addresses(value))
            case "cc":
                h.cc = h.cc if h.cc is not None else []
                _add_unique(h.cc, _split_addresses(value))
            case "reply-to":
                h.reply_to = value
            case "message-id":
                h.msg_id = value
            case "in-reply-to":
                h.in_reply_to = value
            case "subject":
                h.subject = value
            case "x-originating-ip":
                found = _ip_addresses(value)
                if found:
                    h.x_originating_ip = found[0]
            case "received":
                if h.first_received is not None:
                    h.second_received = h.first_received
                h.first_received = value
                found = _ip_addresses(value)
                if found:  # Zeek takes the second address when there are several
                    ips.append(found[1] if len(found) > 1 else found[0])
            case "x-mailer" | "user-agent" | "x-user-agent":
                h.user_agent = value
            case _:
                pass
    h.received_ips = ips
    return h


def _path(session: Session, received: Sequence[str]) -> list[str]:
    path = [session.server.ip, session.client.ip]
    for ip in received:
        if path[-1] != ip:
            path.append(ip)
    return path


# --------------------------------------------------------------------------- the sink


class ZeekLogs:
    """Writes smtp.log / pop3.log / files.log into one folder as sessions finish."""

    def __init__(self, folder: Path, *, json_lines: bool = False) -> None:
        self.folder = folder
        self.json_lines = json_lines
        self._logs: dict[str, _Log] = {}

    @classmethod
    def open(cls, folder: str | Path, *, json_lines: bool = False) -> ZeekLogs:
        """Create the folder (and parents). Raises ZeekLogError with a one-line reason."""
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                raise NotADirectoryError(20, "not a folder")
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as error:
            raise ZeekLogError(
                f"cannot write Zeek logs to {path}: {error.strerror or error}",
                hint="--zeek-logs needs a folder it can create and write",
            ) from None
        return cls(path, json_lines=json_lines)

    # ------------------------------------------------------------------ files

    def _log(self, name: str) -> _Log:
        log = self._logs.get(name)
        if log is not None:
            return log
        target = self.folder / f"{name}.log"
        try:
            # O_NOFOLLOW: a link planted at the log's name is refused, never written through.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            handle = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n")
        except OSError as error:
            raise ZeekLogError(f"cannot write {target}: {error.strerror or error}") from None
        fields = _LOGS[name]
        log = _Log(handle, fields)
        if not self.json_lines:
            handle.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n")
            handle.write(f"#unset_field\t-\n#path\t{name}\n#open\t{_header_time()}\n")
            handle.write("#fields\t" + "\t".join(n for n, _ in fields) + "\n")
            handle.write("#types\t" + "\t".join(t for _, t in fields) + "\n")
        self._logs[name] = log
        return log

    def _write(self, name: str, row: dict[str, Value]) -> None:
        log = self._log(name)
        if self.json_lines:
            obj = {n: _json_value(row[n], t) for n, t in log.fields if row.get(n) is not None}
            line = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
        else:
            line = "\t".join(_tsv_value(row.get(n), t) for n, t in log.fields)
        try:
            log.handle.write(line + "\n")
        except OSError as error:
            raise ZeekLogError(f"cannot write {name}.log: {error.strerror or error}") from None

    def close(self) -> None:
        for log in self._logs.values():
            try:
                if not self.json_lines:
                    log.handle.write(f"#close\t{_header_time()}\n")
                log.handle.close()
            except OSError:
                pass
        self._logs.clear()

    # ------------------------------------------------------------------ rows

    def session_done(self, session: Session) -> None:
        if session.protocol == Protocol.SMTP:
            self._smtp(session)
        elif session.protocol == Protocol.POP3:
            self._pop3(session)
        elif session.protocol == Protocol.IMAP:
            self._imap(session)

    @staticmethod
    def _conn(session: Session) -> dict[str, Value]:
        return {
            "uid": session.uid,
            "id.orig_h": session.client.ip,
            "id.orig_p": session.client.port,
            "id.resp_h": session.server.ip,
            "id.resp_p": session.server.port,
        }

    def _files(
        self,
        session: Session,
        message: Message,
        ts: int,
        where: int,
        depth: int,
        is_orig: bool | None = None,
    ) -> list[str]:
        """files.log rows for a message and its attachments; returns their fuids. is_orig:
        the client sent it (default: for SMTP)."""
        uid = session.uid or ""
        source = session.protocol.upper()
        if is_orig is None:
            is_orig = session.protocol == Protocol.SMTP
        parent = file_uid(uid, where, 0)
        fuids = [parent]
        base = self._conn(session) | {
            "ts": ts,
            "source": source,
            "depth": depth,
            "analyzers": ["SHA256"],
            "is_orig": is_orig,
            "overflow_bytes": 0,
            "timedout": False,
        }
        self._write(
            "files",
            base
            | {
                "fuid": parent,
                "mime_type": "message/rfc822",
                "seen_bytes": message.size,
                "missing_bytes": message.gap_bytes,
                "sha256": message.sha256,
            },
        )
        for n, attachment in enumerate(message.attachments, 1):
            fuid = file_uid(uid, where, n)
            fuids.append(fuid)
            self._write(
                "files",
                base
                | {
                    "fuid": fuid,
                    "mime_type": attachment.content_type,
                    "filename": attachment.filename,
                    "seen_bytes": attachment.size,
                    "missing_bytes": 0,
                    "parent_fuid": parent,
                    "sha256": attachment.sha256,
                },
            )
        return fuids

    def _smtp(self, session: Session) -> None:
        conn = self._conn(session)
        txns = session.transactions
        tls_at = None
        if session.tls and not session.implicit_tls:
            tls_at = next((e for e in reversed(session.exchanges) if e.command == "STARTTLS"), None)
        delivered = 0
        depth = 1
        for i, txn in enumerate(txns):
            refused = reply_failed(txn.mail_from_reply)
            if not refused:  # a refused MAIL FROM opens no transaction: the depth stays
                depth = delivered + 1
            next_ts = txns[i + 1].ts_ns if i + 1 < len(txns) else None
            h = _headers(txn.message)
            fuids: list[str] = []
            if txn.message is not None:
                fuids = self._files(session, txn.message, txn.ts_ns, i + 1, depth)
            row = conn | {
                "ts": txn.ts_ns,
                "trans_depth": depth,
                "helo": session.helo,
                "mailfrom": txn.mail_from or None,
                "rcptto": _unique([r.address for r in txn.rcpts]) if txn.rcpts else None,
                "date": h.date,
                "from": h.from_,
                "to": h.to,
                "cc": h.cc,
                "reply_to": h.reply_to,
                "msg_id": h.msg_id,
                "in_reply_to": h.in_reply_to,
                "subject": h.subject,
                "x_originating_ip": h.x_originating_ip,
                "first_received": h.first_received,
                "second_received": h.second_received,
                "last_reply": self._last_reply(session, txn, next_ts),
                "path": _path(session, h.received_ips or []),
                "user_agent": h.user_agent,
                "tls": False,
                "fuids": fuids,
            }
            self._write("smtp", row)
            if txn.message is not None and txn.data_reply is not None:
                delivered += 1
        if tls_at is not None:
            self._write(
                "smtp",
                conn
                | {
                    "ts": tls_at.ts_ns,
                    "trans_depth": delivered + 1,
                    "helo": session.helo,
                    "last_reply": tls_at.reply,
                    "path": _path(session, []),
                    "tls": True,
                    "fuids": [],
                },
            )

    @staticmethod
    def _last_reply(session: Session, txn: Transaction, next_ts: int | None) -> str | None:
        """The server's last reply in the transaction: the message's reply when one was sent,
        else the last reply before the next MAIL FROM (Zeek's last_reply)."""
        if txn.message is not None and txn.data_reply is not None:
            return txn.data_reply
        if reply_failed(txn.mail_from_reply):
            return txn.mail_from_reply
        last: str | None = None
        for e in session.exchanges:
            if e.ts_ns < txn.ts_ns or e.command == "STARTTLS":
                continue
            if next_ts is not None and e.ts_ns >= next_ts:
                break
            if e.reply is not None:
                last = e.reply
        return last

    def _pop3(self, session: Session) -> None:
        conn = self._conn(session)
        auth = next((a for a in reversed(session.auth) if a.success), None)
        if auth is None and session.auth:
            auth = session.auth[-1]
        common = conn | {
            "banner": session.banner,
            "user": auth.username if auth is not None else None,
            "auth_mechanism": auth.mechanism if auth is not None else None,
            "auth_success": auth.success if auth is not None else None,
            "deleted": list(session.deleted),
            "tls": session.tls,
        }
        if not session.messages:
            self._write("pop3", common | {"ts": session.start_ns, "trans_depth": 0, "fuids": []})
            return
        for n, retrieved in enumerate(session.messages, 1):
            message = retrieved.message
            h = _headers(message)
            fuids = self._files(session, message, retrieved.ts_ns, n, n)
            self._write(
                "pop3",
                common
                | {
                    "ts": retrieved.ts_ns,
                    "trans_depth": n,
                    "command": retrieved.command,
                    "msg_number": retrieved.number,
                    "partial": retrieved.partial,
                    "size": message.size,
                    "date": h.date,
                    "from": h.from_,
                    "to": h.to,
                    "cc": h.cc,
                    "msg_id": h.msg_id,
                    "subject": h.subject,
                    "fuids": fuids,
                },
            )

    def _imap(self, session: Session) -> None:
        conn = self._conn(session)
        auth = next((a for a in reversed(session.auth) if a.success), None)
        if auth is None and session.auth:
            auth = session.auth[-1]
        state = session.imap
        client_id = None
        if state is not None and state.client_id:
            client_id = ", ".join(f"{k}={v}" for k, v in state.client_id)
        expunged = 0
        if state is not None:
            expunged = sum(1 for c in state.changes if c.action == "expunge")
        common = conn | {
            "banner": session.banner,
            "capabilities": _unique(session.capabilities) if session.capabilities else None,
            "client_id": client_id,
            "user": auth.username if auth is not None else None,
            "auth_mechanism": auth.mechanism if auth is not None else None,
            "auth_success": auth.success if auth is not None else None,
            "expunged": expunged,
            "tls": session.tls,
        }
        if not session.messages:
            self._write("imap", common | {"ts": session.start_ns, "trans_depth": 0, "fuids": []})
            return
        for n, moved in enumerate(session.messages, 1):
            message = moved.message
            t = moved.imap
            h = _headers(message)
            appended = t is not None and t.source == "APPEND"
            fuids = self._files(session, message, moved.ts_ns, n, n, is_orig=appended)
            self._write(
                "imap",
                common
                | {
                    "ts": moved.ts_ns,
                    "trans_depth": n,
                    "command": moved.command,
                    "mailbox": t.mailbox if t is not None else None,
                    "msg_uid": t.uid if t is not None else None,
                    "msg_number": moved.number,
                    "section": t.section if t is not None else None,
                    "partial": moved.partial,
                    "flags": _unique(t.flags) if t is not None and t.flags else None,
                    "size": message.size,
                    "date": h.date,
                    "from": h.from_,
                    "to": h.to,
                    "cc": h.cc,
                    "bcc": _unique(a.address for a in message.bcc) if message.bcc else None,
                    "msg_id": h.msg_id,
                    "subject": h.subject,
                    "fuids": fuids,
                },
            )


def _unique(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    _add_unique(out, values)
    return out
