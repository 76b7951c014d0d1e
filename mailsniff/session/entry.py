"""What the registry holds for one protocol (see `mailsniff.session.registry`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mailsniff.model import Session
from mailsniff.session.base import SessionHandler
from mailsniff.sink import OpenSink

__all__ = ["HandlerFactory", "ProtocolEntry"]

#: Builds the handler folding one connection into `session`; `open_sink` is the export hook.
HandlerFactory = Callable[[Session, OpenSink | None], SessionHandler]


@dataclass(frozen=True, slots=True)
class ProtocolEntry:
    """Everything the protocol-independent layers need to know about one protocol."""

    #: Lower-case name: `Session.protocol`, the JSON `protocol` field, the `--protocol` choice.
    name: str
    #: Default cleartext ports (the pipeline parses them; live capture listens on them).
    ports: tuple[int, ...] = ()
    #: Ports where the connection is TLS from its first byte (RFC 8314).
    implicit_tls_ports: tuple[int, ...] = ()
    #: Does the first server payload of a flow on an unknown port open this protocol?
    greeting: Callable[[bytes], bool] | None = None
    #: A first server payload that may open this protocol, decided by the client's first bytes
    #: (`hello`: True yes, False no, None too few bytes yet). SMTP's `220 Greetings`.
    maybe_greeting: Callable[[bytes], bool] | None = None
    hello: Callable[[bytes], bool | None] | None = None
    #: Builds the session handler; None: sessions are recorded (bytes, times, gaps), not parsed.
    handler: HandlerFactory | None = None
    #: The record one message of this protocol is stored in (Transaction, RetrievedMessage).
    record: type | None = None
    #: One line for `--help`.
    description: str = ""

    @property
    def label(self) -> str:
        """The name as titles show it ("SMTP")."""
        return self.name.upper()

    @property
    def all_ports(self) -> tuple[int, ...]:
        return self.ports + self.implicit_tls_ports
