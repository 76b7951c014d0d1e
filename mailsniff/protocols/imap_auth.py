"""Who logged in: the user name (and secret) out of an IMAP AUTHENTICATE exchange.

Uses the shared SASL decoders of `sasl.py` (PLAIN, CRAM-MD5, XOAUTH2) and `ntlm.py` (NTLM), and
reads the mechanisms IMAP clients use that they do not cover yet: LOGIN (user, then password),
OAUTHBEARER (RFC 7628), SCRAM-* (RFC 5802; the user name only, the proof is no secret) and
EXTERNAL (RFC 4422 appendix A). Every function takes captured bytes and never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailsniff.protocols import sasl
from mailsniff.protocols.base import to_text
from mailsniff.protocols.ntlm import AUTHENTICATE, parse_ntlm

__all__ = ["Credentials", "decode_credentials", "decode_oauthbearer"]


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str | None
    authzid: str | None = None
    secret: str | None = None  # password, bearer token, CRAM-MD5 digest (as text)
    secret_raw: bytes = b""  # the secret's bytes exactly as sent (what a redaction must mask)


def _saslname(raw: bytes) -> str:
    """RFC 5802 / RFC 7628 saslname: `=2C` is `,` and `=3D` is `=`."""
    return to_text(raw).replace("=2C", ",").replace("=3D", "=")


def decode_oauthbearer(data: bytes) -> tuple[str | None, bytes | None]:
    """`n,a=user,^Ahost=...^Aauth=Bearer TOKEN^A^A` (RFC 7628 3.1): (authzid user, token)."""
    user: str | None = None
    token: bytes | None = None
    head, _, rest = data.partition(b"\x01")
    for field in head.split(b","):
        if field.startswith(b"a="):
            user = _saslname(field[2:])
    for part in rest.split(b"\x01"):
        key, sep, value = part.partition(b"=")
        if sep and key == b"auth":
            scheme, _, tok = value.partition(b" ")
            token = tok if scheme.lower() == b"bearer" and tok else value
    return user, token


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
        if not client:
            return Credentials(None)
        plain = sasl.decode_plain(first)
        return Credentials(plain.authcid, plain.authzid or None, plain.password, plain.secret)
    if mech == "LOGIN":
        user = to_text(client[0]) if client else None
        secret = client[1] if len(client) > 1 else None
        return Credentials(
            user, None, to_text(secret) if secret is not None else None, secret or b""
        )
    if mech == "CRAM-MD5":
        cram = sasl.decode_cram_md5(first)
        if cram is None:
            return Credentials(None)
        return Credentials(cram.username, None, cram.digest, cram.secret)
    if mech == "XOAUTH2":
        bearer = sasl.decode_xoauth2(first)
        return Credentials(bearer.user, None, bearer.token, bearer.secret)
    if mech == "OAUTHBEARER":
        user, token = decode_oauthbearer(first)
        return Credentials(user, None, to_text(token) if token is not None else None, token or b"")
    if mech.startswith("SCRAM-"):
        # client-first-message = gs2-header "n=" saslname ",r=" nonce (RFC 5802 7)
        fields = first.split(b",")
        authzid = fields[1][2:] if len(fields) > 1 and fields[1].startswith(b"a=") else None
        for field in fields[2:]:
            if field.startswith(b"n="):
                return Credentials(
                    _saslname(field[2:]), _saslname(authzid) if authzid is not None else None
                )
        return Credentials(None)
    if mech == "EXTERNAL":
        return Credentials(None, to_text(first) or None)
    if mech == "NTLM":
        for step in client:
            msg = parse_ntlm(step)
            if msg is not None and msg.kind == AUTHENTICATE and msg.user is not None:
                user = f"{msg.domain}\\{msg.user}" if msg.domain else msg.user
                return Credentials(user)
        return Credentials(None)
    return Credentials(None)
