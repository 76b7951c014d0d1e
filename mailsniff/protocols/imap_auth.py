"""Who logged in: the user name (and secret) out of an IMAP AUTHENTICATE exchange.

Uses the shared SASL decoders of `sasl.py` (PLAIN, LOGIN, CRAM-MD5, XOAUTH2) and adds the
mechanisms IMAP clients use that it does not cover yet: OAUTHBEARER (RFC 7628), SCRAM-* (RFC
5802; the user name only, the proof is no secret), EXTERNAL (RFC 4422 appendix A) and NTLM (the
AUTHENTICATE message's user and domain, MS-NLMP 2.2.1.3). When `sasl.py` provides `decode_ntlm`,
it is used instead of the reader here. Every function takes captured bytes and never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from mailsniff.protocols import sasl
from mailsniff.protocols.base import to_text

__all__ = ["Credentials", "decode_credentials", "decode_ntlm_user", "decode_oauthbearer"]


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str | None
    authzid: str | None = None
    secret: str | None = None  # password, bearer token, CRAM-MD5 digest


def decode_oauthbearer(data: bytes) -> tuple[str | None, str | None]:
    """`n,a=user,^Ahost=...^Aauth=Bearer TOKEN^A^A` (RFC 7628 3.1): (authzid user, token)."""
    user: str | None = None
    token: str | None = None
    head, _, rest = data.partition(b"\x01")
    for field in head.split(b","):
        if field.startswith(b"a="):
            user = to_text(field[2:]).replace("=2C", ",").replace("=3D", "=")
    for part in rest.split(b"\x01"):
        key, sep, value = part.partition(b"=")
        if sep and key == b"auth":
            text = to_text(value)
            scheme, _, tok = text.partition(" ")
            token = tok if scheme.lower() == "bearer" and tok else text
    return user, token


def decode_ntlm_user(data: bytes) -> tuple[str | None, str | None]:
    """(user, domain) of an NTLM AUTHENTICATE_MESSAGE (type 3), or (None, None)."""
    shared = getattr(sasl, "decode_ntlm", None)
    if shared is not None:  # the shared decoder, once sasl.py has it
        result = shared(data)
        user = getattr(result, "user", None)
        domain = getattr(result, "domain", None)
        if user is not None or domain is not None:
            return (str(user) if user is not None else None, str(domain) if domain else None)
    if len(data) < 52 or not data.startswith(b"NTLMSSP\x00") or data[8:12] != b"\x03\x00\x00\x00":
        return None, None
    flags = struct.unpack_from("<I", data, 60)[0] if len(data) >= 64 else 0
    unicode = bool(flags & 0x1)

    def field(offset: int) -> str | None:
        length, _, start = struct.unpack_from("<HHI", data, offset)
        raw = data[start : start + length]
        if not raw or start + length > len(data):
            return None
        if unicode:
            return raw.decode("utf-16-le", "replace")
        return to_text(raw)

    return field(36), field(28)


def decode_credentials(
    mechanism: str, client: Sequence[bytes], server: Sequence[bytes]
) -> Credentials:
    """The user (and secret) of a SASL exchange from the client's and server's decoded steps.

    `client` holds the client responses in order (the initial response first, when one was
    given); `server` the decoded challenges.
    """
    mech = mechanism.upper()
    first = client[0] if client else b""
    if mech == "PLAIN":
        plain = sasl.decode_plain(first)
        if plain is None:
            return Credentials(None)
        return Credentials(plain.authcid, plain.authzid or None, plain.password)
    if mech == "LOGIN":
        steps = [c for c in client]
        user = to_text(steps[0]) if steps else None
        secret = to_text(steps[1]) if len(steps) > 1 else None
        return Credentials(user, None, secret)
    if mech == "CRAM-MD5":
        cram = sasl.decode_cram_md5(first)
        return Credentials(cram[0], None, cram[1]) if cram else Credentials(None)
    if mech == "XOAUTH2":
        user, token = sasl.decode_xoauth2(first)
        return Credentials(user, None, token)
    if mech == "OAUTHBEARER":
        user, token = decode_oauthbearer(first)
        return Credentials(user, None, token)
    if mech.startswith("SCRAM-"):
        # client-first-message = gs2-header "n=" saslname ",r=" nonce (RFC 5802 7)
        _, _, bare = first.partition(b",")
        authzid = bare.partition(b",")[0]
        for field in first.split(b","):
            if field.startswith(b"n="):
                name = to_text(field[2:]).replace("=2C", ",").replace("=3D", "=")
                az = to_text(authzid[2:]) if authzid.startswith(b"a=") else None
                return Credentials(name, az, None)
        return Credentials(None)
    if mech == "EXTERNAL":
        return Credentials(None, to_text(first) or None, None)
    if mech == "NTLM":
        for step in client:
            user, domain = decode_ntlm_user(step)
            if user is not None:
                return Credentials(f"{domain}\\{user}" if domain else user)
        return Credentials(None)
    return Credentials(None)
