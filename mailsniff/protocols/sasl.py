"""Pure SASL decoders shared by SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE.

PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195), XOAUTH2 (Google).
Every function takes captured text and never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from mailsniff.protocols.base import to_text

__all__ = [
    "Decoded",
    "b64decode",
    "decode_plain",
    "decode_cram_md5",
    "decode_xoauth2",
    "PlainCredentials",
]

_B64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")


@dataclass(slots=True, frozen=True)
class Decoded:
    """A base64 SASL blob: the bytes, their text, and whether it really was base64."""

    ok: bool  # False: not valid base64 (shown as sent)
    data: bytes
    text: str


def b64decode(blob: bytes | str) -> Decoded:
    """Decode a base64 SASL line strictly (RFC 4648 alphabet, correct padding).

    `=` alone is the empty response (RFC 4954 4). Input that is not base64 -- the seed's user
    typing `crazywill` where `Y3Jhenl3aWxs` was expected -- comes back with ok=False and the text
    as sent.
    """
    raw = blob.encode("latin-1", "replace") if isinstance(blob, str) else bytes(blob)
    raw = raw.strip()
    if raw == b"=":
        return Decoded(True, b"", "")
    if not raw or len(raw) % 4 or not _B64.match(raw):
        return Decoded(False, raw, to_text(raw))
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return Decoded(False, raw, to_text(raw))
    return Decoded(True, data, to_text(data))


@dataclass(slots=True, frozen=True)
class PlainCredentials:
    authzid: str
    authcid: str
    password: str


def decode_plain(data: bytes) -> PlainCredentials | None:
    """`[authzid] NUL authcid NUL passwd` (RFC 4616 2); None if it does not have that shape."""
    parts = data.split(b"\x00")
    if len(parts) != 3:
        return None
    authzid, authcid, passwd = (to_text(p) for p in parts)
    return PlainCredentials(authzid, authcid, passwd)


def decode_cram_md5(data: bytes) -> tuple[str, str] | None:
    """`username SP digest` (RFC 2195 2): (username, hex digest), or None."""
    text = to_text(data).strip()
    user, sep, digest = text.rpartition(" ")
    if not sep or not user:
        return None
    return user, digest


def decode_xoauth2(data: bytes) -> tuple[str | None, str | None]:
    """`user=U ^A auth=Bearer TOKEN ^A ^A`: (user, token); the token is a secret."""
    user: str | None = None
    token: str | None = None
    for part in data.split(b"\x01"):
        key, sep, value = part.partition(b"=")
        if not sep:
            continue
        if key == b"user":
            user = to_text(value)
        elif key == b"auth":
            text = to_text(value)
            scheme, _, rest = text.partition(" ")
            token = rest if scheme.lower() == "bearer" and rest else text
    return user, token
