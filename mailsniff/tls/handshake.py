"""Parse the handshake messages whose contents matter here: ClientHello, ServerHello,
EncryptedExtensions, ClientKeyExchange (RSA), KeyUpdate. Truncated or malformed bodies give None,
never an exception."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ClientHello",
    "HELLO_RETRY_RANDOM",
    "HANDSHAKE_NAMES",
    "ServerHello",
    "parse_client_hello",
    "parse_encrypted_extensions",
    "parse_server_hello",
]

HANDSHAKE_NAMES = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    22: "CertificateStatus",
    24: "KeyUpdate",
    254: "MessageHash",
}

#: ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3).
HELLO_RETRY_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
)

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_SESSION_TICKET = 35
EXT_PRE_SHARED_KEY = 41
EXT_EARLY_DATA = 42
EXT_SUPPORTED_VERSIONS = 43


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise IndexError
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> bytes:
        return self.take(self.uint(length_bytes))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _extensions(r: _Reader) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    if r.left == 0:
        return out
    block = _Reader(r.vector(2))
    while block.left:
        kind = block.uint(2)
        out.setdefault(kind, block.vector(2))
    return out


def _alpn_list(data: bytes) -> tuple[str, ...]:
    r = _Reader(data)
    names = _Reader(r.vector(2))
    out = []
    while names.left:
        out.append(names.vector(1).decode("ascii", "replace"))
    return tuple(out)


def _sni(data: bytes) -> str | None:
    r = _Reader(data)
    names = _Reader(r.vector(2))
    while names.left:
        kind = names.uint(1)
        name = names.vector(2)
        if kind == 0:
            return name.decode("ascii", "replace")
    return None


@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    extended_master_secret: bool
    encrypt_then_mac: bool
    #: The session_ticket extension was sent non-empty (resumption attempt), or empty (support).
    session_ticket: bytes | None
    psk: bool
    early_data: bool


@dataclass(frozen=True, slots=True)
class ServerHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    #: The negotiated version (supported_versions when present, RFC 8446 4.2.1).
    version: int
    alpn: str | None
    extended_master_secret: bool
    encrypt_then_mac: bool
    session_ticket: bool
    psk: bool

    @property
    def hello_retry(self) -> bool:
        return self.random == HELLO_RETRY_RANDOM


def parse_client_hello(body: bytes) -> ClientHello | None:
    try:
        r = _Reader(body)
        version = r.uint(2)
        random = r.take(32)
        session_id = r.vector(1)
        suites_raw = r.vector(2)
        suites = tuple(
            int.from_bytes(suites_raw[i : i + 2], "big") for i in range(0, len(suites_raw) - 1, 2)
        )
        r.vector(1)  # compression methods
        ext = _extensions(r)
        versions: tuple[int, ...] = ()
        if EXT_SUPPORTED_VERSIONS in ext:
            v = _Reader(ext[EXT_SUPPORTED_VERSIONS]).vector(1)
            versions = tuple(int.from_bytes(v[i : i + 2], "big") for i in range(0, len(v) - 1, 2))
        return ClientHello(
            legacy_version=version,
            random=random,
            session_id=session_id,
            cipher_suites=suites,
            sni=_sni(ext[EXT_SERVER_NAME]) if ext.get(EXT_SERVER_NAME) else None,
            alpn=_alpn_list(ext[EXT_ALPN]) if EXT_ALPN in ext else (),
            supported_versions=versions,
            extended_master_secret=EXT_EXTENDED_MASTER_SECRET in ext,
            encrypt_then_mac=EXT_ENCRYPT_THEN_MAC in ext,
            session_ticket=ext.get(EXT_SESSION_TICKET),
            psk=EXT_PRE_SHARED_KEY in ext,
            early_data=EXT_EARLY_DATA in ext,
        )
    except (IndexError, UnicodeDecodeError):
        return None


def parse_server_hello(body: bytes) -> ServerHello | None:
    try:
        r = _Reader(body)
        version = r.uint(2)
        random = r.take(32)
        session_id = r.vector(1)
        suite = r.uint(2)
        r.uint(1)  # compression
        ext = _extensions(r)
        negotiated = version
        if EXT_SUPPORTED_VERSIONS in ext and len(ext[EXT_SUPPORTED_VERSIONS]) == 2:
            negotiated = int.from_bytes(ext[EXT_SUPPORTED_VERSIONS], "big")
        alpn = _alpn_list(ext[EXT_ALPN]) if EXT_ALPN in ext else ()
        return ServerHello(
            legacy_version=version,
            random=random,
            session_id=session_id,
            cipher_suite=suite,
            version=negotiated,
            alpn=alpn[0] if alpn else None,
            extended_master_secret=EXT_EXTENDED_MASTER_SECRET in ext,
            encrypt_then_mac=EXT_ENCRYPT_THEN_MAC in ext,
            session_ticket=EXT_SESSION_TICKET in ext,
            psk=EXT_PRE_SHARED_KEY in ext,
        )
    except (IndexError, UnicodeDecodeError):
        return None


def parse_encrypted_extensions(body: bytes) -> tuple[str | None, bool] | None:
    """(selected ALPN protocol, early data accepted) from a TLS 1.3 EncryptedExtensions."""
    try:
        ext = _extensions(_Reader(body))
        alpn = _alpn_list(ext[EXT_ALPN]) if EXT_ALPN in ext else ()
        return (alpn[0] if alpn else None), EXT_EARLY_DATA in ext
    except (IndexError, UnicodeDecodeError):
        return None
