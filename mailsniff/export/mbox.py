"""--mbox FILE: every message appended to one mbox (mboxrd quoting, RFC 4155), mailsnarf style.

Each message starts with a `From_` line: the envelope sender (SMTP MAIL FROM; for POP3 the
Return-Path header) or MAILER-DAEMON when there is none or it would break the line, and the
capture time in asctime format (UTC). Lines end in LF as Unix mailboxes do (CRLF becomes LF,
other bytes stay as transferred); a line starting with `From ` or `>From `, `>>From `... gets
one more `>` (mboxrd), so readers (Python's `mailbox.mbox`, mutt) see one message per From_.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import BinaryIO

from mailsniff.model import Message, RetrievedMessage, Transaction

__all__ = ["MboxWriter", "envelope_sender", "from_line"]

_QUOTED = re.compile(rb">*From ")
#: An addr-spec that can stand in a From_ line: no whitespace, no control characters.
_SAFE_SENDER = re.compile(r"[\x21-\x7e\u00a0-\U0010ffff]{1,512}")
_CHUNK = 64 * 1024


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
    """`From sender Fri Nov 27 09:00:00 2026` (asctime, UTC) and LF."""
    stamp = time.asctime(time.gmtime(ts_ns // 1_000_000_000))
    return f"From {sender} {stamp}\n".encode("utf-8", "replace")


class MboxWriter:
    """Appends messages to an mbox file (created if missing), one message at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = path.open("ab")
        self._needs_separator = self._ends_open()
        self.count = 0

    def __enter__(self) -> MboxWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ends_open(self) -> bool:
        """A non-empty mbox whose last message lacks the empty line that closes it."""
        size = self._out.tell()
        if size == 0:
            return False
        with self.path.open("rb") as existing:
            existing.seek(max(0, size - 2))
            tail = existing.read()
        return not (tail.endswith(b"\n\n") or tail == b"\n")

    def append(self, source: BinaryIO, sender: str, ts_ns: int) -> None:
        """Copy one message from `source`, quoting From_ lines, ending with an empty line."""
        out = self._out
        if self._needs_separator:
            out.write(b"\n\n")
            self._needs_separator = False
        out.write(from_line(sender, ts_ns))
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
        self.count += 1

    def close(self) -> None:
        self._out.close()
