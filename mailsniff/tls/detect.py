"""Does a byte stream start with a TLS record? For implicit-TLS ports and the bytes after
STARTTLS/STLS."""

from __future__ import annotations

__all__ = ["starts_with_tls"]

_MAX_RECORD = 2**14 + 2048


def starts_with_tls(data: bytes, *, handshake: bool = True) -> bool | None:
    """True when `data` starts with a plausible TLS record header, False when it cannot,
    None when fewer than 5 bytes do not decide yet.

    With `handshake` (the start of a connection or of TLS after STARTTLS) the record must be a
    handshake record carrying a ClientHello or ServerHello; otherwise any record type 20-24.
    An SSL 2.0-format ClientHello is not counted as TLS.
    """
    if not data:
        return None
    ctype = data[0]
    if handshake and ctype != 22 or not 20 <= ctype <= 24:
        return False
    if len(data) >= 2 and data[1] != 3:
        return False
    if len(data) >= 3 and data[2] > 4:
        return False
    if len(data) < 5:
        return None
    length = int.from_bytes(data[3:5], "big")
    if length == 0 or length > _MAX_RECORD:
        return False
    if handshake and len(data) >= 6 and data[5] not in (1, 2):
        return False
    return True
