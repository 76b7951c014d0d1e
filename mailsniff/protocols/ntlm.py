"""NTLM messages as carried by SASL NTLM in SMTP AUTH and POP3 AUTH ([MS-NLMP] 2.2.1).

A client sends NEGOTIATE (type 1), the server answers CHALLENGE (type 2, with the 8-byte server
challenge), the client sends AUTHENTICATE (type 3: domain, user, workstation and the LM / NT
challenge responses). From type 3 and the type-2 challenge comes the line hashcat cracks:
NetNTLMv2 (mode 5600) `user::domain:challenge:NTProofStr:blob`, NetNTLMv1 (mode 5500)
`user::domain:lm:nt:challenge`. Every function takes captured bytes and never raises.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["NtlmMessage", "describe_ntlm", "parse_ntlm"]

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3
#: NegotiateFlags ([MS-NLMP] 2.2.2.5)
UNICODE = 0x00000001
OEM = 0x00000002
EXTENDED_SESSION_SECURITY = 0x00080000
_NAMES = {NEGOTIATE: "NEGOTIATE", CHALLENGE: "CHALLENGE", AUTHENTICATE: "AUTHENTICATE"}


@dataclass(slots=True, frozen=True)
class NtlmMessage:
    """One NTLM message (type 1, 2 or 3) of an NTLM authentication."""

    kind: int  # 1, 2 or 3
    flags: int
    domain: str | None = None  # type 1 (when supplied) and type 3
    user: str | None = None  # type 3
    workstation: str | None = None  # type 1 (when supplied) and type 3
    target: str | None = None  # type 2 TargetName
    server_challenge: bytes | None = None  # type 2
    lm_response: bytes = b""  # type 3
    nt_response: bytes = b""  # type 3

    @property
    def hash_type(self) -> str | None:
        """Type 3 only: "NetNTLMv2", "NetNTLMv1" or "anonymous" (no NT response, no user)."""
        if self.kind != AUTHENTICATE:
            return None
        if len(self.nt_response) > 24:
            return "NetNTLMv2"
        if len(self.nt_response) == 24:
            return "NetNTLMv1"
        return "anonymous" if not self.user else None


def _field(data: bytes, at: int) -> bytes | None:
    """A security buffer: (Len, MaxLen, BufferOffset) at `at` ([MS-NLMP] 2.2.1)."""
    if at + 8 > len(data):
        return None
    length, _max, offset = struct.unpack_from("<HHI", data, at)
    if offset + length > len(data):
        return None
    return data[offset : offset + length]


def _string(raw: bytes | None, unicode: bool) -> str | None:
    if raw is None:
        return None
    if unicode:
        return raw.decode("utf-16-le", "replace")
    return raw.decode("latin-1")


def parse_ntlm(data: bytes) -> NtlmMessage | None:
    """The NTLM message in `data`, or None when it is not one (wrong signature, cut short)."""
    if not data.startswith(SIGNATURE) or len(data) < 12:
        return None
    (kind,) = struct.unpack_from("<I", data, 8)
    if kind == NEGOTIATE:
        if len(data) < 16:
            return None
        (flags,) = struct.unpack_from("<I", data, 12)
        # Supplied domain / workstation are OEM strings ([MS-NLMP] 2.2.1.1).
        return NtlmMessage(
            NEGOTIATE,
            flags,
            domain=_string(_field(data, 16), False) or None,
            workstation=_string(_field(data, 24), False) or None,
        )
    if kind == CHALLENGE:
        if len(data) < 32:
            return None
        (flags,) = struct.unpack_from("<I", data, 20)
        return NtlmMessage(
            CHALLENGE,
            flags,
            target=_string(_field(data, 12), bool(flags & UNICODE)) or None,
            server_challenge=data[24:32],
        )
    if kind == AUTHENTICATE:
        if len(data) < 64:
            return None
        (flags,) = struct.unpack_from("<I", data, 60)
        unicode = bool(flags & UNICODE)
        return NtlmMessage(
            AUTHENTICATE,
            flags,
            domain=_string(_field(data, 28), unicode),
            user=_string(_field(data, 36), unicode),
            workstation=_string(_field(data, 44), unicode),
            lm_response=_field(data, 12) or b"",
            nt_response=_field(data, 20) or b"",
        )
    return None


def describe_ntlm(data: bytes) -> str | None:
    """A transcript note for one NTLM message (no response bytes: those are the secret)."""
    msg = parse_ntlm(data)
    if msg is None:
        return None
    name = f"NTLM {_NAMES[msg.kind]}"
    if msg.kind == CHALLENGE and msg.server_challenge is not None:
        target = f" target={msg.target}" if msg.target else ""
        return f"{name} server challenge {msg.server_challenge.hex()}{target}"
    if msg.kind == AUTHENTICATE:
        who = f"{msg.domain}\\{msg.user}" if msg.domain else f"{msg.user}"
        where = f" workstation={msg.workstation}" if msg.workstation else ""
        return f"{name} user={who}{where} ({msg.hash_type or 'unknown response'})"
    parts = [name]
    if msg.domain:
        parts.append(f"domain={msg.domain}")
    if msg.workstation:
        parts.append(f"workstation={msg.workstation}")
    return " ".join(parts)
