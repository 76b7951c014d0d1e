"""Record protection: decrypt and authenticate one TLS record (RFC 8446 5.2, RFC 5246 6.2.3,
RFC 5288 GCM, RFC 6655 CCM, RFC 7905 ChaCha20-Poly1305, RFC 7366 encrypt-then-MAC).

Each `RecordCipher` keeps its sequence number: every record of its direction and epoch must be
passed to `decrypt` in order, also the ones that fail, so that the numbers stay right.
"""

from __future__ import annotations

import hmac as _stdlib_hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hmac as _hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from mailsniff.tls.keys import hash_algorithm
from mailsniff.tls.suites import CipherSuite

__all__ = ["RecordCipher", "make_cipher", "tls12_key_material_length"]

_MAC_LENGTH = {"SHA1": 20, "SHA256": 32, "SHA384": 48}

Aead = AESGCM | AESCCM | ChaCha20Poly1305


def _aead(cipher: str, key: bytes) -> tuple[Aead, int]:
    """The AEAD object and its tag length."""
    if cipher.startswith("CHACHA20"):
        return ChaCha20Poly1305(key), 16
    if cipher.endswith("GCM"):
        return AESGCM(key), 16
    tag = 8 if cipher.endswith("CCM-8") else 16
    return AESCCM(key, tag_length=tag), tag


def _xor_nonce(iv: bytes, seq: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(len(iv), "big")


def tls12_key_material_length(s: CipherSuite) -> tuple[int, int, int]:
    """(MAC key, encryption key, IV) lengths from the TLS 1.2 key block for this suite."""
    assert s.cipher is not None
    if s.mac is not None:  # CBC: the IV is explicit in each record
        return _MAC_LENGTH[s.mac], s.key_length, 0
    if s.cipher.startswith("CHACHA20"):
        return 0, 32, 12
    return 0, s.key_length, 4  # GCM/CCM: 4-byte salt, 8-byte explicit nonce per record


class RecordCipher:
    """Decrypts the records of one direction and epoch; `seq` is the next record's number."""

    __slots__ = ("seq", "_aead", "_tag", "_iv", "_kind", "_aes", "_hmac", "_etm")

    def __init__(
        self,
        kind: str,
        cipher: str,
        key: bytes,
        iv: bytes,
        mac: str | None = None,
        mac_key: bytes = b"",
        etm: bool = False,
    ) -> None:
        #: "tls13", "tls12-explicit" (GCM/CCM), "tls12-xor" (ChaCha20), "tls12-cbc".
        self._kind = kind
        self.seq = 0
        self._iv = iv
        self._etm = etm
        self._aes: algorithms.AES | None = None
        self._hmac: _hmac.HMAC | None = None
        if kind == "tls12-cbc":
            self._aead: Aead | None = None
            self._tag = _MAC_LENGTH[mac or "SHA256"]
            self._aes = algorithms.AES(key)
            self._hmac = _hmac.HMAC(mac_key, hash_algorithm(mac or "SHA256"))
        else:
            self._aead, self._tag = _aead(cipher, key)

    def decrypt(self, header: bytes, fragment: bytes) -> tuple[int, bytes] | None:
        """(content type, plaintext) of the next record, or None when it fails authentication."""
        seq = self.seq
        self.seq += 1
        try:
            if self._kind == "tls13":
                return self._tls13(seq, header, fragment)
            if self._kind == "tls12-cbc":
                return self._cbc(seq, header, fragment)
            return self._tls12_aead(seq, header, fragment)
        except (InvalidTag, ValueError):
            return None

    def _tls13(self, seq: int, header: bytes, fragment: bytes) -> tuple[int, bytes] | None:
        assert self._aead is not None
        if len(fragment) < self._tag + 1:
            return None
        inner = self._aead.decrypt(_xor_nonce(self._iv, seq), fragment, header)
        end = len(inner.rstrip(b"\x00"))
        if end == 0:  # no content type: RFC 8446 5.4 makes it an unexpected_message
            return None
        return inner[end - 1], inner[: end - 1]

    def _tls12_aead(self, seq: int, header: bytes, fragment: bytes) -> tuple[int, bytes] | None:
        assert self._aead is not None
        if self._kind == "tls12-xor":
            nonce, body = _xor_nonce(self._iv, seq), fragment
        else:
            nonce, body = self._iv + fragment[:8], fragment[8:]
        length = len(body) - self._tag
        if length < 0:
            return None
        aad = seq.to_bytes(8, "big") + header[:3] + length.to_bytes(2, "big")
        return header[0], self._aead.decrypt(nonce, body, aad)

    def _mac(self, data: bytes) -> bytes:
        assert self._hmac is not None
        h = self._hmac.copy()  # keyed once; each record's MAC from a copy
        h.update(data)
        return h.finalize()

    def _cbc(self, seq: int, header: bytes, fragment: bytes) -> tuple[int, bytes] | None:
        mac_len = self._tag
        prefix = seq.to_bytes(8, "big") + header[:3]
        if self._etm:
            body = fragment[: len(fragment) - mac_len]
            if len(body) < 32 or len(body) % 16:
                return None
            want = self._mac(prefix + len(body).to_bytes(2, "big") + body)
            if not _stdlib_hmac.compare_digest(want, fragment[len(body) :]):
                return None
            plain = self._cbc_decrypt(body)
            return None if plain is None else (header[0], plain)
        if len(fragment) < 16 + max(16, mac_len + 1) or len(fragment) % 16:
            return None
        plain = self._cbc_decrypt(fragment)
        if plain is None or len(plain) < mac_len:
            return None
        content, mac = plain[: len(plain) - mac_len], plain[len(plain) - mac_len :]
        want = self._mac(prefix + len(content).to_bytes(2, "big") + content)
        if not _stdlib_hmac.compare_digest(want, mac):
            return None
        return header[0], content

    def _cbc_decrypt(self, body: bytes) -> bytes | None:
        """Decrypt IV + ciphertext and remove the padding; None when the padding is wrong."""
        assert self._aes is not None
        d = Cipher(self._aes, modes.CBC(body[:16])).decryptor()
        plain = d.update(body[16:]) + d.finalize()
        pad = plain[-1]
        if pad + 1 > len(plain) or plain[-pad - 1 :] != bytes([pad]) * (pad + 1):
            return None
        return plain[: len(plain) - pad - 1]


def make_cipher(
    s: CipherSuite, tls13: bool, key: bytes, iv: bytes, mac_key: bytes = b"", etm: bool = False
) -> RecordCipher:
    assert s.cipher is not None
    if tls13:
        return RecordCipher("tls13", s.cipher, key, iv)
    if s.mac is not None:
        return RecordCipher("tls12-cbc", s.cipher, key, iv, s.mac, mac_key, etm)
    kind = "tls12-xor" if s.cipher.startswith("CHACHA20") else "tls12-explicit"
    return RecordCipher(kind, s.cipher, key, iv)
