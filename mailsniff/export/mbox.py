"""--mbox FILE: every message appended to one mbox (mboxrd quoting, RFC 4155), mailsnarf style.

Each entry starts with a `From_` line: the envelope sender (SMTP MAIL FROM; for POP3 the
Return-Path header) or MAILER-DAEMON when there is none or it would break the line, and the
capture time in asctime format (UTC; the epoch when the capture's time is outside years 1-9999).
Three header lines follow, then the message:

    X-Mailsniff-SHA256: <sha256 of the message as transferred, the name of its .eml>
    X-Mailsniff-Time: <capture time, as in the JSON output>
    X-Mailsniff-Length: <bytes of the whole entry, 20 digits; all zeros while it is written>

and, before the length, for a message that is not whole (a POP3 TOP, an IMAP partial or section
FETCH, bytes never captured):

    X-Mailsniff-Partial: <why>

Lines end in LF as Unix mailboxes do (CRLF becomes LF, other bytes stay as transferred); a line
starting with `From ` or `>From `, `>>From `... gets one more `>` (mboxrd), so readers (Python's
`mailbox.mbox`, mutt) see one message per From_.

Crash safety and idempotence: an entry's length is written last, over the zeros, once the whole
entry is in the file. Opening the mbox reads the entries already there: one left unfinished by a
killed run (zeros, or fewer bytes than its length says) is cut off, and a message whose SHA-256 is
already in the mbox is not appended again, so running the same command twice adds nothing.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import BinaryIO

from mailsniff.model import Message, RetrievedMessage, Transaction
from mailsniff.render.text import format_timestamp, timestamp_in_range

__all__ = ["MboxError", "MboxWriter", "envelope_sender", "from_line"]

_QUOTED = re.compile(rb">*From ")
#: An addr-spec that can stand in a From_ line: no whitespace, no control characters.
_SAFE_SENDER = re.compile(r"[\x21-\x7e\u00a0-\U0010ffff]{1,512}")
_CHUNK = 64 * 1024
_SHA_HEADER = b"X-Mailsniff-SHA256: "
_TIME_HEADER = b"X-Mailsniff-Time: "
_LENGTH_HEADER = b"X-Mailsniff-Length: "
_PARTIAL_HEADER = b"X-Mailsniff-Partial: "
_LENGTH_DIGITS = 20
_SHA = re.compile(rb"X-Mailsniff-SHA256: ([0-9a-f]{64})\n")
_LENGTH = re.compile(rb"X-Mailsniff-Length: (\d{20})\n")


class MboxError(OSError):
    """The mbox cannot be opened or written; `strerror` says why."""


def envelope_sender(message: Message, owner: Transaction | RetrievedMessage) -> str:
    """The From_ line's sender: MAIL FROM, else Return-Path, else MAILER-DAEMON."""
    sender = ""
    if isinstance(owner, Transaction):
        sender = owner.mail_from
    else:
        for name, value in message.headers:
            if name.lower() == "return-path":
                sender = value.strip().strip("<>").strip()
                break
    if not _SAFE_SENDER.fullmatch(sender) or not sender.isprintable():
        return "MAILER-DAEMON"
    try:
        sender.encode("utf-8")  # bytes that were not UTF-8 (kept as surrogates)
    except UnicodeEncodeError:
        return "MAILER-DAEMON"
    return sender


def from_line(sender: str, ts_ns: int) -> bytes:
    """`From sender Fri Nov 27 09:00:00 2026` (asctime, UTC) and LF.

    A time outside years 1-9999 has no asctime form readers parse: the epoch stands in (the
    entry's X-Mailsniff-Time header keeps the real value).
    """
    seconds = ts_ns // 1_000_000_000 if timestamp_in_range(ts_ns) else 0
    stamp = time.asctime(time.gmtime(seconds))
    return f"From {sender} {stamp}\n".encode("utf-8", "replace")


class _Entry:
    __slots__ = ("start", "sha256", "length", "lines")

    def __init__(self, start: int) -> None:
        self.start = start
        self.sha256: str | None = None
        self.length: int | None = None
        self.lines = 0  # header lines looked at after the From_ line


class MboxWriter:
    """Appends messages to an mbox file (created 0600 if missing), one whole entry at a time.

    Raises:
        MboxError: FILE is not a regular file.
        OSError: FILE cannot be opened, read or written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MboxError(0, "not a regular file")
            os.set_blocking(fd, True)
            self._out = os.fdopen(fd, "r+b")
        except BaseException:
            os.close(fd)
            raise
        self.count = 0
        self.skipped = 0  # messages already in the mbox
        self.cut = 0  # bytes of an unfinished entry removed on open
        self._hashes: set[str] = set()
        self._recover()
        self._needs_separator = self._ends_open()

    def __enter__(self) -> MboxWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recover(self) -> None:
        """Read the entries already there; cut off one a killed run left unfinished."""
        out = self._out
        out.seek(0)
        entries: list[_Entry] = []
        current: _Entry | None = None
        offset = 0
        at_line_start = True
        while True:
            line = out.readline(_CHUNK)
            if not line:
                break
            if at_line_start and line.startswith(b"From "):
                current = _Entry(offset)
                entries.append(current)
            elif current is not None and at_line_start and current.lines < 3:
                current.lines += 1
                sha = _SHA.fullmatch(line)
                if sha is not None and current.lines == 1:
                    current.sha256 = sha.group(1).decode()
                length = _LENGTH.fullmatch(line)
                if length is not None and current.lines == 3 and current.sha256 is not None:
                    current.length = int(length.group(1))
                elif current.lines == 3:
                    current.sha256 = None  # not an entry this writer made
            offset += len(line)
            at_line_start = line.endswith(b"\n")
        for n, entry in enumerate(entries):
            end = entries[n + 1].start if n + 1 < len(entries) else offset
            if entry.sha256 is not None and entry.length == end - entry.start:
                self._hashes.add(entry.sha256)
        if entries:
            last = entries[-1]
            whole = last.sha256 is not None and last.length == offset - last.start
            ours = last.sha256 is not None or (last.lines < 3 and self._looks_ours(last.start))
            if ours and not whole:
                out.truncate(last.start)
                self.cut = offset - last.start
                offset = last.start
        out.seek(offset)

    def _looks_ours(self, start: int) -> bool:
        """An entry cut before its headers were complete: From_ line then X-Mailsniff- or EOF."""
        out = self._out
        out.seek(start)
        out.readline(_CHUNK)
        rest = out.read(len(_SHA_HEADER))
        return _SHA_HEADER.startswith(rest)

    def _ends_open(self) -> bool:
        """A non-empty mbox whose last message lacks the empty line that closes it."""
        size = self._out.tell()
        if size == 0:
            return False
        self._out.seek(max(0, size - 2))
        tail = self._out.read()
        return not (tail.endswith(b"\n\n") or tail == b"\n")

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._hashes

    def append(
        self, source: BinaryIO, sender: str, ts_ns: int, sha256: str, partial: str | None = None
    ) -> bool:
        """Copy one message from `source` as a whole entry; False if its SHA-256 is there.
        `partial`: why the message is not whole (model.incomplete_reason), said in the entry.

        On a write error the partial entry is cut off again before the error is raised.
        """
        if sha256 in self._hashes:
            self.skipped += 1
            return False
        out = self._out
        start = out.seek(0, os.SEEK_END)
        try:
            written = self._write_entry(source, sender, ts_ns, sha256, partial)
        except OSError:
            self._cut_back(start)
            raise
        self._hashes.add(sha256)
        self.count += 1
        return written

    def _cut_back(self, start: int) -> None:
        try:
            self._out.flush()
        except OSError:
            pass
        try:
            os.ftruncate(self._out.fileno(), start)
            self._out.seek(start)
        except OSError:
            pass  # the next run cuts it off: its length is still zeros

    def _write_entry(
        self, source: BinaryIO, sender: str, ts_ns: int, sha256: str, partial: str | None
    ) -> bool:
        out = self._out
        head = b""
        if self._needs_separator:
            head = b"\n\n"
        start = out.tell() + len(head)
        head += from_line(sender, ts_ns)
        head += _SHA_HEADER + sha256.encode("ascii") + b"\n"
        head += _TIME_HEADER + format_timestamp(ts_ns).encode("ascii") + b"\n"
        if partial is not None:
            head += _PARTIAL_HEADER + partial.encode("ascii", "replace") + b"\n"
        length_at = out.tell() + len(head) + len(_LENGTH_HEADER)
        head += _LENGTH_HEADER + b"0" * _LENGTH_DIGITS + b"\n"
        out.write(head)
        self._needs_separator = False
        at_line_start = True
        last = b"\n"
        carry = b""  # a CR at the end of a chunk: CRLF may continue in the next one
        while True:
            chunk = source.readline(_CHUNK)
            if not chunk:
                break
            if carry:
                chunk = carry + chunk
                carry = b""
            if chunk.endswith(b"\r"):
                carry, chunk = b"\r", chunk[:-1]
                if not chunk:
                    continue
            if at_line_start and _QUOTED.match(chunk):
                out.write(b">")
            if chunk.endswith(b"\r\n"):
                chunk = chunk[:-2] + b"\n"
            out.write(chunk)
            last = chunk[-1:]
            at_line_start = last == b"\n"
        if carry:
            out.write(carry)
            last = carry
        if last != b"\n":
            out.write(b"\n")
        out.write(b"\n")  # the empty line before the next From_
        out.flush()
        length = out.tell() - start
        digits = f"{length:0{_LENGTH_DIGITS}d}".encode("ascii")
        if os.pwrite(out.fileno(), digits, length_at) != len(digits):
            raise OSError(0, "short write")
        return True

    def close(self) -> None:
        """Flush and fsync the mbox, then close it.

        Raises:
            OSError: the last bytes cannot be written.
        """
        if self._out.closed:
            return
        try:
            self._out.flush()
            os.fsync(self._out.fileno())
        finally:
            try:
                self._out.close()
            except OSError:
                pass
