"""Key derivation: the TLS 1.2 PRF (RFC 5246 5, RFC 7627 extended master secret) and the TLS 1.3
HKDF key schedule from traffic secrets (RFC 8446 7.1-7.3, KeyUpdate in 7.2)."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

__all__ = [
    "hash_algorithm",
    "hkdf_expand_label",
    "key_block",
    "master_secret",
    "prf",
    "tls13_keys",
    "tls13_next_secret",
]


def hash_algorithm(name: str) -> hashes.HashAlgorithm:
    if name == "SHA384":
        return hashes.SHA384()
    if name == "SHA1":
        return hashes.SHA1()
    return hashes.SHA256()


def _hmac_digest(algorithm: hashes.HashAlgorithm, key: bytes, data: bytes) -> bytes:
    h = _hmac.HMAC(key, algorithm)
    h.update(data)
    return h.finalize()


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """TLS 1.2 PRF: P_hash(secret, label + seed) cut to `length` bytes."""
    algorithm = hash_algorithm(hash_name)
    seed = label + seed
    out = bytearray()
    a = seed
    while len(out) < length:
        a = _hmac_digest(algorithm, secret, a)
        out += _hmac_digest(algorithm, secret, a + seed)
    return bytes(out[:length])


def master_secret(
    hash_name: str,
    pre_master: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None = None,
) -> bytes:
    """The 48-byte master secret; with `session_hash`, the extended master secret (RFC 7627)."""
    if session_hash is not None:
        return prf(hash_name, pre_master, b"extended master secret", session_hash, 48)
    return prf(hash_name, pre_master, b"master secret", client_random + server_random, 48)


def key_block(
    hash_name: str, master: bytes, client_random: bytes, server_random: bytes, length: int
) -> bytes:
    return prf(hash_name, master, b"key expansion", server_random + client_random, length)


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(hash_algorithm(hash_name), length, info).derive(secret)


def tls13_keys(hash_name: str, secret: bytes, key_length: int) -> tuple[bytes, bytes]:
    """(write key, 12-byte IV) of a traffic secret."""
    key = hkdf_expand_label(hash_name, secret, b"key", b"", key_length)
    iv = hkdf_expand_label(hash_name, secret, b"iv", b"", 12)
    return key, iv


def tls13_next_secret(hash_name: str, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate."""
    return hkdf_expand_label(hash_name, secret, b"traffic upd", b"", len(secret))
