"""Evidence export: each message (RFC 5322) as transferred, to .eml files, an mbox, a manifest.

The pipeline's session handlers hand every message's bytes, as they arrive, to a sink opened
here (`Exporter.open_sink`); the sink spools them to a temporary file, so memory stays bounded
whatever the message size and an export never holds more than one message in memory. When the
message ends it goes to the mbox (`mbox.py`) and/or becomes a content-addressed .eml with its
decoded attachments (`eml.py`); the manifest line that ties it to its session is written when
the session ends, from the finished (and, with --redact, redacted) Session record.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailsniff.errors import MailsniffError
from mailsniff.export.eml import EmlStore, StoredMessage, manifest_record
from mailsniff.export.mbox import MboxWriter, envelope_sender
from mailsniff.model import Message, RetrievedMessage, Session, Transaction
from mailsniff.sink import MessageSink

__all__ = ["ExportError", "Exporter", "ExportOptions", "open_exporter"]


class ExportError(MailsniffError):
    """The export folder or mbox file cannot be created or written."""


@dataclass(slots=True, frozen=True, kw_only=True)
class ExportOptions:
    extract: Path | None = None  # --extract DIR
    mbox: Path | None = None  # --mbox FILE
    session_ids: frozenset[int] | None = None  # only these sessions (--session)

    @property
    def wanted(self) -> bool:
        return self.extract is not None or self.mbox is not None


class _Spool:
    """One message's bytes on their way to disk: a temporary file, hashed as it is written."""

    __slots__ = ("_exporter", "_session", "path", "_file", "hash", "size", "_closed")

    def __init__(self, exporter: Exporter, session: Session, directory: Path) -> None:
        self._exporter = exporter
        self._session = session
        fd, name = tempfile.mkstemp(prefix=".mailsniff-", suffix=".part", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self._closed = False

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise _write_error(self.path, error) from None
        self.hash.update(data)
        self.size += len(data)

    def gap(self, length: int) -> None:
        return None  # bytes never captured are not invented; the manifest gives gap_bytes

    def end(self, message: Message, owner: Transaction | RetrievedMessage) -> None:
        try:
            self._file.close()
            self._closed = True
            self._exporter._message_done(self, self._session, message, owner)
        except OSError as error:
            raise _write_error(self.path, error) from None

    def abandon(self) -> None:
        self.discard()

    def discard(self) -> None:
        if not self._closed:
            self._file.close()
            self._closed = True
        self.path.unlink(missing_ok=True)
        self._exporter._spools.discard(self)


class Exporter:
    """Receives messages from the pipeline (`open_sink`) and finished sessions (`session_done`).

    Use as a context manager, or call `close()`: it flushes the mbox and removes spools of
    messages that never ended.
    """

    def __init__(self, options: ExportOptions) -> None:
        self._options = options
        self._store = EmlStore(options.extract) if options.extract is not None else None
        self._mbox = MboxWriter(options.mbox) if options.mbox is not None else None
        if options.extract is not None:
            self._spool_dir = options.extract
        elif options.mbox is not None:
            self._spool_dir = options.mbox.resolve().parent
        else:
            self._spool_dir = Path(tempfile.gettempdir())
        self._spools: set[_Spool] = set()
        # id(Message) -> what was written for it, until its session ends (the Message object
        # lives in the session record, so the id stays unique meanwhile)
        self._pending: dict[int, StoredMessage | None] = {}
        self.messages = 0

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_sink(self, session: Session) -> MessageSink | None:
        """The pipeline's hook: a sink for the next message of `session` (None: not wanted)."""
        wanted = self._options.session_ids
        if wanted is not None and session.id not in wanted:
            return None
        spool = _Spool(self, session, self._spool_dir)
        self._spools.add(spool)
        return spool

    def _message_done(
        self,
        spool: _Spool,
        session: Session,
        message: Message,
        owner: Transaction | RetrievedMessage,
    ) -> None:
        self._spools.discard(spool)
        try:
            self.messages += 1
            if self._mbox is not None:
                with spool.path.open("rb") as source:
                    self._mbox.append(source, envelope_sender(message, owner), _time(owner))
            stored: StoredMessage | None = None
            if self._store is not None:
                stored = self._store.add_message(spool.path, spool.hash.hexdigest(), spool.size)
            self._pending[id(message)] = stored
        finally:
            spool.path.unlink(missing_ok=True)  # already moved into place when extracted

    def session_done(self, session: Session) -> None:
        """Write the manifest lines of the session's messages (after analysis / redaction)."""
        owners: list[tuple[str, Transaction | RetrievedMessage, Message]] = []
        for n, txn in enumerate(session.transactions, 1):
            if txn.message is not None:
                owners.append((f"t{n}", txn, txn.message))
        for n, retrieved in enumerate(session.messages, 1):
            owners.append((f"m{n}", retrieved, retrieved.message))
        for where, owner, message in owners:
            if id(message) not in self._pending:
                continue
            stored = self._pending.pop(id(message))
            if self._store is not None and stored is not None:
                try:
                    self._store.record(manifest_record(session, where, owner, message, stored))
                except OSError as error:
                    raise _write_error(self._store.root, error) from None

    def close(self) -> None:
        for spool in list(self._spools):
            spool.discard()
        self._pending.clear()
        if self._mbox is not None:
            self._mbox.close()
        if self._store is not None:
            self._store.close()


def open_exporter(options: ExportOptions) -> Exporter | None:
    """An Exporter for the options, None when no export was asked for.

    Raises:
        ExportError: the folder or file cannot be created (one line for the user).
    """
    if not options.wanted:
        return None
    try:
        return Exporter(options)
    except OSError as error:
        where = options.extract if options.extract is not None else options.mbox
        raise ExportError(
            f"cannot write to {where}: {error.strerror or error}",
            hint="--extract needs a folder it can create, --mbox a file it can append to",
        ) from None


def _write_error(where: Path, error: OSError) -> ExportError:
    return ExportError(f"cannot write to {where.parent}: {error.strerror or error}")


def _time(owner: Transaction | RetrievedMessage) -> int:
    return owner.ts_ns
