"""The protocol registry: one entry per protocol, and the only place that lists them.

The pipeline (ports, greeting detection, which handler folds a connection), the CLI's
`--protocol` choices, live capture's default filter, analysis and the renderers read it; nothing
outside a protocol's own modules names SMTP or POP3 by branch. A new protocol is its parser
(`mailsniff.protocols`), its session builder (`mailsniff.session`) and one `register()` call;
optionally a console view (`mailsniff.render.views`). An entry's `handler` may import its
builder when the first connection needs it: IMAP's entry (`session.imap_entry`) does, so that a
capture without IMAP never loads the IMAP parser.

Where TLS sits: a connection where TLS happens is read through a TLS layer
(`session.tls_layer.TlsLayer`) that the pipeline puts under the entry's handler when TLS can
start. On one of the entry's `implicit_tls_ports` that is before the first byte (TLS starts there
unless the server greets in clear); elsewhere it is when the handler's parser reports the upgrade
(STARTTLS, STLS: the handler sets `Session.tls`, and its parser hands over the bytes past that
point with `tls_handover()` and reads the decrypted dialogue after `resume_plaintext()`). A
dialogue that stays in clear is read by the entry's handler alone. With a key log the layer feeds
the entry's handler the plaintext; without one it records what it saw of the TLS.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailsniff.session import imap_entry, pop3, smtp
from mailsniff.session.entry import HandlerFactory, ProtocolEntry

__all__ = [
    "HandlerFactory",
    "ProtocolEntry",
    "detect_greeting",
    "entries",
    "entry",
    "for_port",
    "names",
    "register",
    "unregister",
]

_ENTRIES: dict[str, ProtocolEntry] = {
    e.name: e
    for e in (
        smtp.ENTRY,
        pop3.ENTRY,
        imap_entry.ENTRY,
    )
}
#: Bumped on every change, so that readers caching derived tables know to rebuild them.
_VERSION = [0]


def register(new: ProtocolEntry) -> ProtocolEntry:
    """Add (or replace, by name) a protocol. A port may belong to one protocol only."""
    for other in _ENTRIES.values():
        if other.name == new.name:
            continue
        clash = set(other.all_ports) & set(new.all_ports)
        if clash:
            raise ValueError(f"port {min(clash)} is already {other.name}'s")
    _ENTRIES[new.name] = new
    _VERSION[0] += 1
    return new


def unregister(name: str) -> None:
    _ENTRIES.pop(name, None)
    _VERSION[0] += 1


def version() -> int:
    return _VERSION[0]


def entries() -> Iterator[ProtocolEntry]:
    yield from list(_ENTRIES.values())


def names() -> list[str]:
    return list(_ENTRIES)


def entry(name: str) -> ProtocolEntry | None:
    return _ENTRIES.get(name)


def for_port(port: int) -> tuple[ProtocolEntry, bool] | None:
    """The protocol a server port speaks by default, and whether it is implicit TLS."""
    for e in _ENTRIES.values():
        if port in e.ports:
            return e, False
        if port in e.implicit_tls_ports:
            return e, True
    return None


def detect_greeting(payload: bytes) -> ProtocolEntry | None:
    """The protocol whose greeting `payload` (a flow's first server bytes) is, if any."""
    for e in _ENTRIES.values():
        if e.greeting is not None and e.greeting(payload):
            return e
    return None


def detect_maybe(payload: bytes) -> ProtocolEntry | None:
    """The protocol `payload` may open, to be confirmed by the client's first bytes."""
    for e in _ENTRIES.values():
        if e.maybe_greeting is not None and e.hello is not None and e.maybe_greeting(payload):
            return e
    return None
