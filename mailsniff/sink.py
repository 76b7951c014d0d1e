"""Where a message's bytes go while it is parsed: the interfaces exporters implement.

Session builders ask an `OpenSink` for a sink at the start of every message and hand it every
byte; the exporters in `mailsniff.export` implement them. Value-layer module: imports only the
model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from mailsniff.model import Message, RetrievedMessage, Session, Transaction

__all__ = ["MessageSink", "OpenSink", "RawSink"]


class RawSink(Protocol):
    """Receives every byte of one message as transferred (after dot-unstuffing), in order.

    The accumulator forwards to it; whoever made it (an exporter) decides where bytes go.
    """

    def write(self, data: bytes) -> None:
        """The next bytes of the message."""

    def gap(self, length: int) -> None:
        """`length` bytes here were never captured (nothing is written for them)."""


class MessageSink(RawSink, Protocol):
    """A RawSink told how its message ended: finished (with the record it belongs to) or not."""

    def end(self, message: Message, owner: Transaction | RetrievedMessage) -> None:
        """The message is complete as far as the capture goes; `owner` holds `message`."""

    def abandon(self) -> None:
        """The message was dropped (its command unknown, or the connection ended inside it)."""


#: Opens the sink for a session's next message when it starts; None: not wanted.
OpenSink = Callable[[Session], MessageSink | None]
