"""Message bytes -> Message record (RFC 5322, 2045-2049) with the standard library's email package.

PLACEHOLDER: a first cut so that protocol session builders can be written against the API;
the mail layer owner replaces the internals, keeping `MessageAccumulator` and `parse_message`.
"""

from __future__ import annotations

import hashlib

from mailsniff.limits import MAX_MESSAGE
from mailsniff.model import Message

__all__ = ["MessageAccumulator", "parse_message"]


class MessageAccumulator:
    """Collects one message's bytes (already dot-unstuffed) with bounded memory.

    Every byte is hashed and counted; only the first `max_bytes` are kept for parsing.
    """

    __slots__ = ("_buf", "_max", "_hash", "_size", "_gap_bytes")

    def __init__(self, max_bytes: int = MAX_MESSAGE) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        self._gap_bytes = 0

    @property
    def size(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        room = self._max - len(self._buf)
        if room > 0:
            self._buf += data[:room]

    def note_gap(self, length: int) -> None:
        """`length` bytes inside the message were never captured (not hashed, not counted)."""
        self._gap_bytes += length

    def finish(self) -> Message:
        msg = parse_message(bytes(self._buf))
        msg.size = self._size
        msg.sha256 = self._hash.hexdigest()
        msg.truncated = self._size > len(self._buf)
        msg.gap_bytes = self._gap_bytes
        return msg


def parse_message(raw: bytes) -> Message:
    """Parse a whole message (headers and body). Never raises on hostile input."""
    return Message(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
