"""--extract DIR: messages (RFC 5322) as .eml, attachments (RFC 2045, 2183) decoded, a manifest.

Layout, all content-addressed so a second run into the same folder adds nothing twice:

    DIR/<sha256>.eml              the message exactly as transferred (after dot-unstuffing)
    DIR/attachments/<sha256>      each attachment decoded (the original filename is only in
                                  the manifest: names from the capture never become paths)
    DIR/manifest.jsonl            one line per message seen, keyed by session and position

Every file is written under a temporary name in its final folder and then renamed, so a killed
extraction leaves no half-written file under a final name. Manifest lines are appended with one
write each and deduplicated by `key` against the lines already there. Nothing already in DIR is
trusted: files are opened relative to DIR's descriptor without following links, and an existing
file counts only when it is a regular file whose SHA-256 is its name.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mailsniff.analysis.findings import authenticated_user
from mailsniff.limits import MAX_MESSAGE
from mailsniff.mail.mime import attachment_payloads
from mailsniff.model import (
    Address,
    Message,
    RetrievedMessage,
    Session,
    Transaction,
    incomplete_reason,
)
from mailsniff.render.jsonl import dumps, iso8601

__all__ = [
    "EmlStore",
    "MANIFEST",
    "RefusedError",
    "StoredAttachment",
    "StoredMessage",
    "manifest_record",
    "temp_file",
]

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


_CHUNK = 1 << 20
_NEW = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class RefusedError(OSError):
    """Something already in DIR is not what mailsniff would have written there."""


def temp_file(dir_fd: int) -> tuple[int, str]:
    """A new, empty 0600 file `.mailsniff-*.part` in the folder `dir_fd`: (fd, name).

    O_EXCL and O_NOFOLLOW: never opens anything that was there, a link least of all.
    """
    for _ in range(100):
        name = f".mailsniff-{secrets.token_hex(8)}.part"
        try:
            return os.open(name, _NEW, 0o600, dir_fd=dir_fd), name
        except FileExistsError:
            continue
    raise FileExistsError(0, "no free temporary file name")


def open_folder(name: str, dir_fd: int) -> int:
    """The sub-folder `name` of `dir_fd` (created 0700 if missing), never through a link."""
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    try:
        return os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise RefusedError(error.errno, f"{_kind(name, dir_fd)}, not a folder") from None
        raise


def _kind(name: str, dir_fd: int) -> str:
    """What the entry `name` is, in words ("a symbolic link", "a FIFO"...)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return "missing"
    for test, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return words
    return "a regular file"


def check_existing(name: str, dir_fd: int, sha256: str) -> str | None:
    """None when `name` is missing; "" when it is a regular file whose SHA-256 is `sha256`;
    otherwise why it cannot be the file of that name (it is never followed, nor read whole)."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except FileNotFoundError:
        return None
    except OSError:
        return _kind(name, dir_fd)  # a link (ELOOP), a socket (ENXIO), unreadable
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return _kind(name, dir_fd)
        digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return (
            "" if digest.hexdigest() == sha256 else "a file whose content does not match its name"
        )
    finally:
        os.close(fd)


class EmlStore:
    """One extraction folder: message files, attachment files and the manifest.

    Every file inside DIR is opened relative to DIR's descriptor without following links:
    a link, FIFO or device already in DIR is never written through or read as a message
    (`refused` lists what was found in the way).

    Raises:
        RefusedError: DIR/attachments or DIR/manifest.jsonl is a link or not what it should be.
        OSError: DIR cannot be created or opened.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.refused: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        self.dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._attachments_fd = -1
        self._fd = -1
        try:
            try:
                self._attachments_fd = open_folder(ATTACHMENTS, self.dir_fd)
            except RefusedError as error:
                raise RefusedError(
                    error.errno, f"{root / ATTACHMENTS} is {error.strerror}"
                ) from None
            self._fd = self._open_manifest()
            self._keys = self._existing_keys()
        except BaseException:
            self.close()
            raise
        self.written_lines = 0

    def _open_manifest(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        where = self.root / MANIFEST
        try:
            fd = os.open(MANIFEST, flags, 0o600, dir_fd=self.dir_fd)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                kind = _kind(MANIFEST, self.dir_fd)
                raise RefusedError(error.errno, f"{where} is {kind}, not a file") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise RefusedError(0, f"{where} is {_kind(MANIFEST, self.dir_fd)}, not a file")
        os.set_blocking(fd, True)
        return fd

    def _existing_keys(self) -> set[str]:
        keys: set[str] = set()
        with os.fdopen(os.dup(self._fd), "rb") as manifest:
            manifest.seek(0)
            for line in manifest:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a full disk: its message is written again
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    keys.add(record["key"])
        return keys

    def _refuse(self, text: str) -> None:
        self.refused.append(text)

    def _place(self, dir_fd: int, folder: Path, temp: str, name: str, sha256: str) -> bool:
        """Rename the finished temporary file `temp` to `name` in `dir_fd`, unless a regular
        file with the right content is there. Something else in the way is replaced (the entry
        itself, never what a link points to) and reported; a folder in the way is refused."""
        existing = check_existing(name, dir_fd, sha256)
        if existing == "":
            os.unlink(temp, dir_fd=dir_fd)
            return True
        if existing == "a folder":
            os.unlink(temp, dir_fd=dir_fd)
            self._refuse(f"{folder / name} is a folder: not extracted")
            return False
        os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        if existing is not None:
            self._refuse(f"{folder / name} was {existing}: replaced by the extracted file")
        return True

    def add_message(
        self, spool: BinaryIO, spool_name: str, sha256: str, size: int
    ) -> StoredMessage | None:
        """Move the spooled message (the file `spool_name` in DIR, open as `spool`) into place
        and decode its attachments; None when it could not be placed (see `refused`)."""
        name = f"{sha256}.eml"
        if not self._place(self.dir_fd, self.root, spool_name, name, sha256):
            return None
        stored = StoredMessage(file=name, size=size, sha256=sha256)
        if size > MAX_MESSAGE:
            stored.attachments_extracted = False  # decoding would hold it all in memory
            return stored
        spool.seek(0)
        raw = spool.read()
        for attachment, data in attachment_payloads(raw):
            digest = hashlib.sha256(data).hexdigest()
            self._write_new(digest, data)
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

    def _write_new(self, digest: str, data: bytes) -> None:
        """Write an attachment as attachments/<digest> unless it is there (temporary file first)."""
        dir_fd = self._attachments_fd
        if check_existing(digest, dir_fd, digest) == "":
            return
        fd, temp = temp_file(dir_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            self._place(dir_fd, self.root / ATTACHMENTS, temp, digest, digest)
        finally:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass

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
        for attr in ("_fd", "_attachments_fd", "dir_fd"):
            fd = getattr(self, attr)
            if fd >= 0:
                setattr(self, attr, -1)
                os.close(fd)


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


def manifest_record(
    session: Session,
    where: str,
    owner: Transaction | RetrievedMessage,
    message: Message,
    stored: StoredMessage,
) -> dict[str, Any]:
    """The manifest line of one message: file, hashes, session, envelope, decoded headers."""
    command = owner.body_command or "DATA" if isinstance(owner, Transaction) else owner.command
    partial = incomplete_reason(owner, message) is not None
    key = (
        f"{str(session.protocol)}/{session.client}/{session.server}/{session.start_ns}"
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
            "protocol": str(session.protocol),
            "client": {"ip": session.client.ip, "port": session.client.port},
            "server": {"ip": session.server.ip, "port": session.server.port},
            "start": iso8601(session.start_ns),
            "end": iso8601(session.end_ns),
            "complete": session.complete,
            "helo": session.helo,
            "authenticated_user": authenticated_user(session),
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
