"""One factory for the Session records tests build by hand."""

from __future__ import annotations

from typing import Any

from mailsniff.model import Endpoint, Protocol, Session
from mailsniff.session import registry

__all__ = ["make_session"]


def make_session(
    protocol: str = Protocol.SMTP,
    *,
    client: tuple[str, int] = ("10.0.0.1", 40000),
    server: tuple[str, int | None] = ("10.0.0.2", None),
    id: int = 1,
    start_ns: int = 0,
    end_ns: int = 0,
    **fields: Any,
) -> Session:
    """A Session of `protocol` between `client` and `server` (port None: the protocol's first
    registered port); any other Session field by keyword."""
    ip, port = server
    if port is None:
        entry = registry.entry(protocol)
        assert entry is not None and entry.ports, protocol
        port = entry.ports[0]
    return Session(
        id=id,
        protocol=protocol,
        client=Endpoint(*client),
        server=Endpoint(ip, port),
        start_ns=start_ns,
        end_ns=end_ns,
        **fields,
    )
