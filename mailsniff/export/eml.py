"""--extract DIR: messages (RFC 5322) as .eml, attachments (RFC 2045, 2183) decoded, a manifest.

Layout, all content-addressed so a second run into the same folder adds nothing twice:

    DIR/<sha256>.eml              the message exactly as transferred (after dot-unstuffing)
    DIR/attachments/<sha256>      each attachment decoded (the original filename is only in
                                  the manifest: names from the capture never become paths)
    DIR/manifest.jsonl            one line per message seen, keyed by session and position

Every file is written under a temporary name in its final folder and then renamed (os.replace),
so a killed extraction leaves no half-written file under a final name. Manifest lines are
appended with one write each and deduplicated by `key` against the lines already there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailsniff.limits import MAX_MESSAGE
from mailsniff.mail.mime import attachment_payloads
from mailsniff.model import Address, Message, RetrievedMessage, Session, Transaction
from mailsniff.render.jsonl import dumps, iso8601

__all__ = ["EmlStore", "StoredAttachment", "StoredMessage", "manifest_record", "MANIFEST"]

MANIFEST = "manifest.jsonl"
ATTACHMENTS = "attachments"


@dataclass(slots=True, frozen=True)
class StoredAttachment:
    filename: str | None  # as the message names it (decoded), never used as a path
    content_type: str
    disposition: str | None
    size: int
    sha256: str
    file: str  # path relative to DIR


@dataclass(slots=True)
class StoredMessage:
    file: str  # path relative to DIR
    size: int
    sha256: str
    attachments: list[StoredAttachment] = field(default_factory=list)
    #: False when the message was too large to decode its attachments (over MAX_MESSAGE).
    attachments_extracted: bool = True


def _commit(temp: Path, final: Path) -> bool:
    """Move a finished temporary file to its content-addressed name; False if already there."""
    if final.exists():
        temp.unlink(missing_ok=True)
        return False
    os.replace(temp, final)
    return True


def _write_new(directory: Path, name: str, data: bytes) -> None:
    """Write `data` as directory/name unless it exists: temporary file first, then renamed."""
    final = directory / name
    if final.exists():
        return
    fd, temp = tempfile.mkstemp(prefix=".mailsniff-", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        _commit(Path(temp), final)
    finally:
        Path(temp).unlink(missing_ok=True)


class EmlStore:
    """One extraction folder: message files, attachment files and the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / ATTACHMENTS).mkdir(exist_ok=True)
        self._manifest_path = root / MANIFEST
        self._keys = self._existing_keys()
        self._fd = os.open(self._manifest_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.written_lines = 0

    def _existing_keys(self) -> set[str]:
        keys: set[str] = set()
        try:
            with self._manifest_path.open("rb") as manifest:
                for line in manifest:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line cut by a full disk: its message is written again
                    if isinstance(record, dict) and isinstance(record.get("key"), str):
                        keys.add(record["key"])
        except FileNotFoundError:
            pass
        return keys

    def add_message(self, spool: Path, sha256: str, size: int) -> StoredMessage:
        """Move the spooled message into place and decode its attachments."""
        name = f"{sha256}.eml"
        _commit(spool, self.root / name)
        stored = StoredMessage(file=name, size=size, sha256=sha256)
        if size > MAX_MESSAGE:
            stored.attachments_extracted = False  # decoding would hold it all in memory
            return stored
        raw = (self.root / name).read_bytes()
        for attachment, data in attachment_payloads(raw):
            digest = hashlib.sha256(data).hexdigest()
            _write_new(self.root / ATTACHMENTS, digest, data)
            stored.attachments.append(
                StoredAttachment(
                    filename=attachment.filename,
                    content_type=attachment.content_type,
                    disposition=attachment.disposition,
                    size=len(data),
                    sha256=digest,
                    file=f"{ATTACHMENTS}/{digest}",
                )
            )
        return stored

    def record(self, record: dict[str, Any]) -> bool:
        """Append one manifest line unless a line with its key is there already."""
        key = record["key"]
        if key in self._keys:
            return False
        self._keys.add(key)
        data = (dumps(record) + "\n").encode("utf-8")
        while data:  # one write for a line in practice: a kill never leaves half of it
            written = os.write(self._fd, data)
            data = data[written:]
        self.written_lines += 1
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _addresses(addresses: list[Address]) -> list[dict[str, str]]:
    return [{"name": a.name, "address": a.address} for a in addresses]


def _envelope(owner: Transaction | RetrievedMessage) -> dict[str, Any] | None:
    if not isinstance(owner, Transaction):
        return None
    return {
        "mail_from": owner.mail_from,
        "rcpt_to": owner.rcpt_to,
        "rcpt_accepted": owner.rcpt_accepted,
        "bcc": list(owner.bcc),
        "header_only": list(owner.header_only),
        "data_reply": owner.data_reply,
    }


def _authenticated(session: Session) -> str | None:
    for attempt in reversed(session.auth):
        if attempt.success is True and attempt.username:
            return attempt.username
    return None


def manifest_record(
    session: Session,
    where: str,
    owner: Transaction | RetrievedMessage,
    message: Message,
    stored: StoredMessage,
) -> dict[str, Any]:
    """The manifest line of one message: file, hashes, session, envelope, decoded headers."""
    if isinstance(owner, Transaction):
        command = owner.body_command or "DATA"
        partial = message.gap_bytes > 0
    else:
        command = owner.command
        partial = owner.partial
    key = (
        f"{session.protocol.value}/{session.client}/{session.server}/{session.start_ns}"
        f"/{where}/{stored.sha256}"
    )
    return {
        "key": key,
        "file": stored.file,
        "size": stored.size,
        "sha256": stored.sha256,
        "partial": partial,
        "truncated": message.truncated,
        "gap_bytes": message.gap_bytes,
        "time": iso8601(owner.ts_ns),
        "command": command,
        "session": {
            "id": session.id,
            "protocol": session.protocol.value,
            "client": {"ip": session.client.ip, "port": session.client.port},
            "server": {"ip": session.server.ip, "port": session.server.port},
            "start": iso8601(session.start_ns),
            "end": iso8601(session.end_ns),
            "complete": session.complete,
            "helo": session.helo,
            "authenticated_user": _authenticated(session),
        },
        "envelope": _envelope(owner),
        "headers": {
            "from": _addresses(message.from_),
            "sender": _addresses(message.sender),
            "reply_to": _addresses(message.reply_to),
            "to": _addresses(message.to),
            "cc": _addresses(message.cc),
            "bcc": _addresses(message.bcc),
            "subject": message.subject,
            "date": message.date,
            "message_id": message.message_id,
            "all": [[name, value] for name, value in message.headers],
        },
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "disposition": a.disposition,
                "size": a.size,
                "sha256": a.sha256,
                "file": a.file,
            }
            for a in stored.attachments
        ],
        "attachments_extracted": stored.attachments_extracted,
    }
