"""Evidence export: each message (RFC 5322) as transferred, to .eml files, an mbox, a manifest.

The pipeline's session handlers hand every message's bytes, as they arrive, to a sink opened
here (`Exporter.open_sink`); the sink spools them to a temporary file, so memory stays bounded
whatever the message size and an export never holds more than one message in memory. When the
message ends it goes to the mbox (`mbox.py`) and/or becomes a content-addressed .eml with its
decoded attachments (`eml.py`); the manifest line that ties it to its session is written when
the session ends, from the finished (and, with --redact, redacted) Session record.

With `hold` (filters that need the analysed session: --address, --finding, --since/--until)
a finished message stays in its spool file, closed, until its session ends: `session_done`
then writes it, `session_dropped` (the session did not pass the filters) removes it. What is
held is on disk, one closed file per message of the sessions still open.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mailsniff.errors import MailsniffError
from mailsniff.export.eml import EmlStore, RefusedError, StoredMessage, manifest_record, temp_file
from mailsniff.export.mbox import MboxWriter, envelope_sender
from mailsniff.model import Message, RetrievedMessage, Session, Transaction, incomplete_reason
from mailsniff.sink import MessageSink
from mailsniff.status import ExitStatus

__all__ = ["ExportError", "Exporter", "ExportOptions", "open_exporter"]


class ExportError(MailsniffError):
    """The export folder or mbox file cannot be created or written."""

    exit_status = ExitStatus.WRITE_FAILED


@dataclass(slots=True, frozen=True, kw_only=True)
class ExportOptions:
    extract: Path | None = None  # --extract DIR
    mbox: Path | None = None  # --mbox FILE
    session_ids: frozenset[int] | None = None  # only these sessions (--session)
    #: Hold each message until its session ends and is kept or dropped (filters that need
    #: the analysed session: the messages written are those of the sessions shown).
    hold: bool = False

    @property
    def wanted(self) -> bool:
        return self.extract is not None or self.mbox is not None


class _Spool:
    """One message's bytes on their way to disk: a temporary file, hashed as it is written."""

    __slots__ = ("_exporter", "_session", "name", "_file", "hash", "size", "_closed")

    def __init__(self, exporter: Exporter, session: Session) -> None:
        self._exporter = exporter
        self._session = session
        fd, self.name = temp_file(exporter.spool_fd)
        self._file = os.fdopen(fd, "w+b")
        self.hash = hashlib.sha256()
        self.size = 0
        self._closed = False

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise self._exporter.write_error(error) from None
        self.hash.update(data)
        self.size += len(data)

    def gap(self, length: int) -> None:
        return None  # bytes never captured are not invented; the manifest gives gap_bytes

    def end(self, message: Message, owner: Transaction | RetrievedMessage) -> None:
        held = False
        try:
            self._file.flush()
            held = self._exporter._message_ended(self, self._session, message, owner)
        except OSError as error:
            raise self._exporter.write_error(error) from None
        finally:
            if held:  # kept on disk, closed, until its session is kept or dropped
                self._file.close()
            else:
                self.discard()

    def read_back(self) -> BinaryIO:
        if self._file.closed:  # held until its session ended
            fd = os.open(
                self.name,
                os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=self._exporter.spool_fd,
            )
            self._file = os.fdopen(fd, "r+b")
        self._file.seek(0)
        return self._file

    def abandon(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Close and remove the temporary file (quietly: this runs on the error paths too)."""
        if not self._closed:
            self._closed = True
            try:
                self._file.close()
            except OSError:
                pass  # its unwritten bytes are not wanted: the file goes
            try:
                os.unlink(self.name, dir_fd=self._exporter.spool_fd)
            except OSError:
                pass  # already renamed into place
        self._exporter._spools.discard(self)


#: A message while its session is open: the session's id, the message's sha256 and size.
_MessageKey = tuple[int, str, int]


def _message_key(session: Session, message: Message) -> _MessageKey:
    return (session.id, message.sha256, message.size)


class Exporter:
    """Receives messages from the pipeline (`open_sink`) and finished sessions (`session_done`).

    Use as a context manager, or call `close()`: it flushes the mbox and removes spools of
    messages that never ended. `refused` lists what was found in the way in DIR (and replaced
    or skipped), for warnings and the exit status.
    """

    def __init__(self, options: ExportOptions) -> None:
        self._options = options
        self._store: EmlStore | None = None
        self._mbox: MboxWriter | None = None
        self.spool_fd = -1
        try:
            if options.extract is not None:
                self._store = EmlStore(options.extract)
                self.spool_fd = os.dup(self._store.dir_fd)
            if options.mbox is not None:
                try:
                    self._mbox = MboxWriter(options.mbox)
                except OSError as error:
                    raise ExportError(
                        f"cannot write to {options.mbox}: {error.strerror or error}",
                        hint="--mbox needs a regular file it can create or append to",
                    ) from None
                if self.spool_fd < 0:
                    parent = options.mbox.parent
                    self.spool_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise
        self._spools: set[_Spool] = set()
        # What was written for each message, until its session ends (in order, for the rare
        # session that carries the same message twice). Keyed by value, not by the objects'
        # ids: an idle session is parked on disk and read back as new objects (park.py).
        self._pending: dict[_MessageKey, list[StoredMessage | None]] = {}
        # hold: session id -> its finished messages, in order, until the session ends
        self._held: dict[int, list[tuple[_Spool, Message, Transaction | RetrievedMessage]]] = {}
        self.messages = 0

    @property
    def refused(self) -> list[str]:
        return self._store.refused if self._store is not None else []

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_error(self, error: OSError) -> ExportError:
        """The one line for a failed write: names --extract DIR, else the --mbox file."""
        where = self._options.extract if self._options.extract is not None else self._options.mbox
        return ExportError(f"cannot write to {where}: {error.strerror or error}")

    def open_sink(self, session: Session) -> MessageSink | None:
        """The pipeline's hook: a sink for the next message of `session` (None: not wanted)."""
        wanted = self._options.session_ids
        if wanted is not None and session.id not in wanted:
            return None
        try:
            spool = _Spool(self, session)
        except OSError as error:
            raise self.write_error(error) from None
        self._spools.add(spool)
        return spool

    def _message_ended(
        self,
        spool: _Spool,
        session: Session,
        message: Message,
        owner: Transaction | RetrievedMessage,
    ) -> bool:
        """A message ended: write it now, or (hold) keep its spool; True when kept."""
        if self._options.hold:
            self._held.setdefault(session.id, []).append((spool, message, owner))
            return True
        self._message_done(spool, session, message, owner)
        return False

    def _message_done(
        self,
        spool: _Spool,
        session: Session,
        message: Message,
        owner: Transaction | RetrievedMessage,
    ) -> None:
        self.messages += 1
        if self._mbox is not None:
            sha256 = spool.hash.hexdigest()
            try:
                self._mbox.append(
                    spool.read_back(),
                    envelope_sender(message, owner),
                    owner.ts_ns,
                    sha256,
                    incomplete_reason(owner, message),
                )
            except OSError as error:
                raise ExportError(
                    f"cannot write to {self._options.mbox}: {error.strerror or error}"
                ) from None
        stored: StoredMessage | None = None
        if self._store is not None:
            stored = self._store.add_message(
                spool.read_back(), spool.name, spool.hash.hexdigest(), spool.size
            )
        self._pending.setdefault(_message_key(session, message), []).append(stored)

    def session_dropped(self, session: Session) -> None:
        """The session did not pass the filters: its held messages are not written."""
        for spool, _, _ in self._held.pop(session.id, ()):
            spool.discard()

    def session_done(self, session: Session) -> None:
        """Write the manifest lines of the session's messages (after analysis / redaction);
        with hold, write its held messages first."""
        held = self._held.pop(session.id, ())
        for n, (spool, message, owner) in enumerate(held):
            try:
                self._message_done(spool, session, message, owner)
            except OSError as error:
                raise self.write_error(error) from None
            except BaseException:
                for later, _, _ in held[n:]:
                    later.discard()
                raise
            spool.discard()
        owners: list[tuple[str, Transaction | RetrievedMessage, Message]] = []
        for n, txn in enumerate(session.transactions, 1):
            if txn.message is not None:
                owners.append((f"t{n}", txn, txn.message))
        for n, retrieved in enumerate(session.messages, 1):
            owners.append((f"m{n}", retrieved, retrieved.message))
        for where, owner, message in owners:
            key = _message_key(session, message)
            queue = self._pending.get(key)
            if not queue:
                continue
            stored = queue.pop(0)
            if not queue:
                del self._pending[key]
            if self._store is not None and stored is not None:
                try:
                    self._store.record(manifest_record(session, where, owner, message, stored))
                except OSError as error:
                    raise self.write_error(error) from None

    def close(self) -> None:
        """Remove unfinished spools, close DIR, flush and close the mbox.

        Raises:
            ExportError: the mbox's last bytes cannot be written.
        """
        for spool in list(getattr(self, "_spools", ())):
            spool.discard()
        getattr(self, "_pending", {}).clear()
        getattr(self, "_held", {}).clear()
        if self._store is not None:
            self._store.close()
        if self.spool_fd >= 0:
            os.close(self.spool_fd)
            self.spool_fd = -1
        if self._mbox is not None:
            mbox, self._mbox = self._mbox, None
            try:
                mbox.close()
            except OSError as error:
                raise ExportError(
                    f"cannot write to {self._options.mbox}: {error.strerror or error}"
                ) from None


def open_exporter(options: ExportOptions) -> Exporter | None:
    """An Exporter for the options, None when no export was asked for.

    Raises:
        ExportError: the folder or file cannot be created (one line for the user).
    """
    if not options.wanted:
        return None
    try:
        return Exporter(options)
    except RefusedError as error:
        raise ExportError(
            f"refusing to write through {error.strerror}",
            hint="mailsniff never follows links inside DIR; remove it or choose another folder",
        ) from None
    except OSError as error:
        where = options.extract if options.extract is not None else options.mbox
        raise ExportError(
            f"cannot write to {where}: {error.strerror or error}",
            hint="--extract needs a folder it can create, --mbox a file it can append to",
        ) from None
