"""NTLM authentication ([MS-NLMP]) folded into AuthAttempt records, for SMTP and POP3 alike."""

from __future__ import annotations

from mailsniff.model import AuthAttempt
from mailsniff.protocols.ntlm import AUTHENTICATE, parse_ntlm

__all__ = ["fold_ntlm", "fold_ntlm_challenge"]


def fold_ntlm_challenge(attempt: AuthAttempt, data: bytes) -> None:
    """A server challenge line: keep the type-2 server challenge (hex) on the attempt."""
    msg = parse_ntlm(data)
    if msg is not None and msg.server_challenge is not None:
        attempt.challenge = msg.server_challenge.hex()


def fold_ntlm(attempt: AuthAttempt, data: bytes, wire: bytes = b"") -> None:
    """A client NTLM message: type 3 fills user, domain, workstation, the hash and its secrets.

    The NEGOTIATE message names no user and is never taken as one. The hashcat line goes in
    `response` when the server challenge was captured (without it nothing can be cracked).
    `wire` is the line as sent (masked whole by --redact).
    """
    msg = parse_ntlm(data)
    if msg is None or msg.kind != AUTHENTICATE:
        return
    attempt.username = msg.user
    attempt.domain = msg.domain
    attempt.workstation = msg.workstation
    attempt.hash_type = msg.hash_type
    attempt.secrets += [r for r in (msg.nt_response, msg.lm_response, wire) if len(r) > 1]
    challenge = attempt.challenge
    if challenge is None or msg.hash_type not in ("NetNTLMv2", "NetNTLMv1"):
        return
    user, domain = msg.user or "", msg.domain or ""
    if msg.hash_type == "NetNTLMv2":
        proof, blob = msg.nt_response[:16], msg.nt_response[16:]
        attempt.response = f"{user}::{domain}:{challenge}:{proof.hex()}:{blob.hex()}"
    else:
        attempt.response = (
            f"{user}::{domain}:{msg.lm_response.hex()}:{msg.nt_response.hex()}:{challenge}"
        )
