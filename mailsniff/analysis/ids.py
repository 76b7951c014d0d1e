"""Flow identifiers analysts pivot on between tools: Community ID and a Zeek-style uid.

Community ID v1 (https://github.com/corelight/community-id-spec), as Zeek, Suricata and
Arkime compute it: SHA-1 over seed (2 bytes), the two addresses and ports ordered so both
directions agree, protocol (TCP = 6) and a zero pad byte; base64, prefixed "1:".

The uid stands in for Zeek's connection uid ("C" + base62): Zeek draws its uids at random, so
they cannot be reproduced; mailsniff's are derived from the flow (client, server, protocol) and
its start time, so two runs over the same capture agree and the uid can key the JSON records
to the Zeek-style logs. File ids ("F" + base62) are derived the same way from the session uid
and the file's place in the session.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
from typing import Final

from mailsniff.model import Endpoint, Session

__all__ = ["IPPROTO_TCP", "community_id", "file_uid", "flow_uid", "identify"]

IPPROTO_TCP = 6
_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _packed(ip: str) -> bytes:
    try:  # IPv4 in dotted quads, the common case, in C (the same strict form ipaddress takes)
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        return ipaddress.ip_address(ip.split("%", 1)[0]).packed


def community_id(a: Endpoint, b: Endpoint, proto: int = IPPROTO_TCP, seed: int = 0) -> str:
    """The Community ID v1 string of the flow between `a` and `b` (either order)."""
    a_ip, b_ip = _packed(a.ip), _packed(b.ip)
    first, second = (a_ip, a.port), (b_ip, b.port)
    # The spec orders by address, then by port; the smaller endpoint goes first.
    if not (a_ip < b_ip or (a_ip == b_ip and a.port < b.port)):
        first, second = second, first
    data = (
        struct.pack("!H", seed & 0xFFFF)
        + first[0]
        + second[0]
        + struct.pack("!BBHH", proto, 0, first[1], second[1])
    )
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def _base62(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out)) or "0"


def _uid(prefix: str, text: str) -> str:
    # 96 bits like Zeek's uids; base62 of them is at most 17 characters.
    return prefix + _base62(hashlib.sha256(text.encode("utf-8")).digest()[:12])


def flow_uid(client: Endpoint, server: Endpoint, start_ns: int, proto: int = IPPROTO_TCP) -> str:
    """'C' + base62 of a hash of the 5-tuple and the start time (nanoseconds)."""
    return _uid("C", f"{proto}|{client.ip}|{client.port}|{server.ip}|{server.port}|{start_ns}")


def file_uid(session_uid: str, *where: int) -> str:
    """'F' + base62 of a hash of the session uid and the file's position in the session."""
    return _uid("F", session_uid + "|" + "|".join(map(str, where)))


def identify(session: Session) -> None:
    """Set the session's community_id and uid (from its endpoints and start time)."""
    try:
        session.community_id = community_id(session.client, session.server)
    except ValueError:  # not an IP address (never from the decoder); leave it unset
        session.community_id = None
    session.uid = flow_uid(session.client, session.server, session.start_ns)
