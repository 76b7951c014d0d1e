"""NTLM messages built by hand from [MS-NLMP] 2.2.1 (NEGOTIATE, CHALLENGE, AUTHENTICATE)."""

from __future__ import annotations

import hashlib
import hmac
import struct

SIGNATURE = b"NTLMSSP\x00"
UNICODE, OEM, REQUEST_TARGET, NTLM = 0x1, 0x2, 0x4, 0x200
EXTENDED_SESSION_SECURITY, TARGET_INFO = 0x80000, 0x800000

SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")


def _buffers(header_size: int, payloads: list[bytes]) -> tuple[bytes, bytes]:
    """Security buffer fields (Len, MaxLen, BufferOffset) and the payload they point into."""
    fields, payload, offset = b"", b"", header_size
    for data in payloads:
        fields += struct.pack("<HHI", len(data), len(data), offset)
        payload += data
        offset += len(data)
    return fields, payload


def negotiate(flags: int = UNICODE | OEM | REQUEST_TARGET | NTLM) -> bytes:
    fields, payload = _buffers(32, [b"", b""])  # no domain, no workstation supplied
    return SIGNATURE + struct.pack("<II", 1, flags) + fields + payload


def challenge(
    server_challenge: bytes = SERVER_CHALLENGE,
    target: str = "EXAMPLE",
    flags: int = UNICODE | NTLM | TARGET_INFO,
) -> bytes:
    name = target.encode("utf-16-le")
    info = struct.pack("<HH", 2, len(name)) + name + struct.pack("<HH", 0, 0)  # MsvAvNbDomainName
    header = 48
    target_field, payload = _buffers(header, [name, info])
    return (
        SIGNATURE
        + struct.pack("<I", 2)
        + target_field[:8]
        + struct.pack("<I", flags)
        + server_challenge
        + b"\x00" * 8
        + target_field[8:]
        + payload
    )


def authenticate(
    user: str,
    domain: str,
    workstation: str,
    lm_response: bytes,
    nt_response: bytes,
    flags: int = UNICODE | NTLM | EXTENDED_SESSION_SECURITY,
) -> bytes:
    encode = (lambda s: s.encode("utf-16-le")) if flags & UNICODE else (lambda s: s.encode())
    header = 64
    fields, payload = _buffers(
        header,
        [lm_response, nt_response, encode(domain), encode(user), encode(workstation), b""],
    )
    return SIGNATURE + struct.pack("<I", 3) + fields + struct.pack("<I", flags) + payload


def ntlmv2_response(nt_hash: bytes, user: str, domain: str) -> tuple[bytes, bytes, bytes]:
    """(NTProofStr, blob, NtChallengeResponse) per [MS-NLMP] 3.3.2, from the NT hash."""
    key = hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), hashlib.md5).digest()
    blob = (
        b"\x01\x01\x00\x00\x00\x00\x00\x00"
        + struct.pack("<Q", 133_000_000_000_000_000)  # timestamp
        + bytes.fromhex("a1b2c3d4e5f60718")  # client challenge
        + b"\x00\x00\x00\x00"
        + b"\x00\x00\x00\x00"  # MsvAvEOL
    )
    proof = hmac.new(key, SERVER_CHALLENGE + blob, hashlib.md5).digest()
    return proof, blob, proof + blob
