"""IMAP's registry entry, apart from its session builder.

The IMAP parser and session builder (`protocols.imap`, `protocols.imap_events`,
`session.imap`) declare some 60 record classes; importing them is a fifth of `mailsniff`'s
start-up. This entry holds what the pipeline needs before a connection is known to be IMAP (the
ports, the greeting) and imports the builder when the first IMAP connection is folded, so a
capture without IMAP never pays for it.
"""

from __future__ import annotations

from mailsniff.model import RetrievedMessage, Session
from mailsniff.session.base import SessionHandler
from mailsniff.session.entry import ProtocolEntry
from mailsniff.sink import OpenSink

__all__ = ["ENTRY", "is_greeting"]


def is_greeting(payload: bytes) -> bool:
    """RFC 3501 7.1: an IMAP server opens with `* OK`, `* PREAUTH` (or `* BYE`)."""
    if not payload.startswith(b"* "):
        return False  # most flows probed: told without copying their first bytes
    head = payload[:12].upper()
    return head.startswith((b"* OK ", b"* OK\r", b"* PREAUTH", b"* BYE "))


def _handler(session: Session, open_sink: OpenSink | None) -> SessionHandler:
    from mailsniff.session.imap import ImapSessionHandler

    return ImapSessionHandler(session, open_sink)


#: IMAP's registry entry (RFC 3501 / RFC 9051; implicit TLS 993 RFC 8314).
ENTRY: ProtocolEntry = ProtocolEntry(
    name="imap",
    ports=(143,),
    implicit_tls_ports=(993,),
    greeting=is_greeting,
    handler=_handler,
    record=RetrievedMessage,
    description="mailbox access",
)
