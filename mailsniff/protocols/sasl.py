"""Pure SASL decoders shared by SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE.

PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195), XOAUTH2 (Google).
Every function takes captured text and never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from mailsniff.model import Direction
from mailsniff.protocols.base import SaslStep, to_text

__all__ = [
    "BearerCredentials",
    "CramResponse",
    "Decoded",
    "b64decode",
    "decode_plain",
    "decode_cram_md5",
    "decode_xoauth2",
    "PlainCredentials",
    "sasl_step",
]

_B64: Final = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@dataclass(slots=True, init=False)
class Decoded:
    """A base64 SASL blob: the bytes, their text, and whether it really was base64."""

    ok: bool  # False: not valid base64 (shown as sent)
    data: bytes
    text: str

    def __init__(self, ok: bool, data: bytes, text: str) -> None:
        self.ok = ok
        self.data = data
        self.text = text


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


def sasl_step(
    ts_ns: int,
    direction: Direction,
    raw: bytes,
    blob: bytes,
    mechanism: str,
    *,
    initial: bool = False,
    seq: int | None = None,
    tag: str = "",
    empty_is_base64: bool = True,
) -> SaslStep:
    """The `SaslStep` of one SASL line whose payload is `blob`: `*` from the client cancels;
    an empty payload (`+ ` alone, `334`, `=`) is empty data unless `empty_is_base64` is False."""
    stripped = blob.strip()
    cancelled = direction is Direction.CLIENT and stripped == b"*"
    if cancelled:
        ok, data, text = False, stripped, "*"
    elif not stripped and empty_is_base64:
        ok, data, text = True, b"", ""
    else:
        decoded = b64decode(stripped)
        ok, data, text = decoded.ok, decoded.data, decoded.text
    return SaslStep(
        ts_ns=ts_ns,
        direction=direction,
        raw=raw,
        mechanism=mechanism,
        data=data,
        text=text,
        base64=ok,
        initial=initial,
        cancelled=cancelled,
        seq=seq,
        tag=tag,
    )


@dataclass(slots=True, frozen=True)
class PlainCredentials:
    authzid: str
    authcid: str | None  # None: the blob had no NUL at all, so no identity can be told apart
    password: str
    #: The password bytes exactly as the client sent them (what --redact must mask).
    secret: bytes = b""
    #: Fewer than the two NULs of `authzid NUL authcid NUL passwd` (further NULs, a trailing
    #: one, are kept in the password as sent: --redact must not reveal the password's shape).
    malformed: bool = False


def decode_plain(data: bytes) -> PlainCredentials:
    """`[authzid] NUL authcid NUL passwd` (RFC 4616 2), tolerant of what clients get wrong.

    Everything after the second NUL is the password (a trailing NUL stays part of it); with a
    single NUL the blob is read as `authcid NUL passwd`; with none, the whole blob is taken as
    the password, since it cannot be told apart from one. The password never lands in the
    identity fields.
    """
    parts = data.split(b"\x00", 2)
    if len(parts) == 3:
        authzid, authcid, passwd = parts
        malformed = False
    elif len(parts) == 2:
        authzid, (authcid, passwd), malformed = b"", parts, True
    else:
        return PlainCredentials("", None, to_text(data), data, malformed=True)
    return PlainCredentials(to_text(authzid), to_text(authcid), to_text(passwd), passwd, malformed)


@dataclass(slots=True, frozen=True)
class CramResponse:
    username: str
    digest: str
    secret: bytes  # the digest bytes as sent


def decode_cram_md5(data: bytes) -> CramResponse | None:
    """`username SP digest` (RFC 2195 2), split at the last space; None without one."""
    body = data.strip(b" \t\r\n")
    user, sep, digest = body.rpartition(b" ")
    if not sep or not user:
        return None
    return CramResponse(to_text(user), to_text(digest), digest)


@dataclass(slots=True, frozen=True)
class BearerCredentials:
    user: str | None
    token: str | None
    secret: bytes  # the token bytes as sent (b"" when there is none)


def decode_xoauth2(data: bytes) -> BearerCredentials:
    """`user=U ^A auth=Bearer TOKEN ^A ^A`: the user and the token; the token is a secret."""
    user: str | None = None
    token: bytes | None = None
    for part in data.split(b"\x01"):
        key, sep, value = part.partition(b"=")
        if not sep:
            continue
        if key == b"user":
            user = to_text(value)
        elif key == b"auth":
            scheme, _, rest = value.partition(b" ")
            token = rest if scheme.lower() == b"bearer" and rest else value
    if token is None:
        return BearerCredentials(user, None, b"")
    return BearerCredentials(user, to_text(token), token)
