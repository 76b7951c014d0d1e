"""TLS cipher suites: IANA names, key exchange, and what the record layer needs to decrypt them.

Only the suites whose record protection this package implements carry a `cipher`; the others are
listed for their names (a capture of RC4 or 3DES is still reported by name, as not decryptable).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CipherSuite", "suite", "suite_name", "version_name"]

#: Record protections implemented (see `mailsniff.tls.record`): AEADs and AES-CBC.
AEAD_CIPHERS = frozenset(
    {"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305", "AES-128-CCM", "AES-256-CCM",
     "AES-128-CCM-8", "AES-256-CCM-8"}
)  # fmt: skip
CBC_CIPHERS = frozenset({"AES-128-CBC", "AES-256-CBC"})


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One cipher suite as registered by IANA."""

    code: int
    name: str
    #: "TLS1.3" (negotiated separately), "ECDHE", "DHE", "RSA" (static RSA key transport), "other".
    kex: str
    #: Record protection, e.g. "AES-128-GCM"; None when this package cannot decrypt the suite.
    cipher: str | None = None
    #: MAC hash of a CBC suite ("SHA1", "SHA256", "SHA384"); None for AEADs.
    mac: str | None = None
    #: Hash of the TLS 1.2 PRF / TLS 1.3 key schedule.
    prf: str = "SHA256"

    @property
    def supported(self) -> bool:
        return self.cipher is not None

    @property
    def key_length(self) -> int:
        c = self.cipher or ""
        return 32 if "256" in c or "CHACHA" in c else 16

    @property
    def aead(self) -> bool:
        return self.cipher in AEAD_CIPHERS

    @property
    def forward_secrecy(self) -> bool | None:
        """True for ephemeral key exchange, False for static RSA/PSK, None when unknown."""
        if self.kex in ("TLS1.3", "ECDHE", "DHE"):
            return True
        if self.kex == "RSA":
            return False
        return None


def _s(code: int, name: str, cipher: str | None = None, mac: str | None = None) -> CipherSuite:
    body = name.removeprefix("TLS_")
    if code >> 8 == 0x13:
        kex = "TLS1.3"
    elif body.startswith("ECDHE_"):
        kex = "ECDHE"
    elif body.startswith("DHE_"):
        kex = "DHE"
    elif body.startswith("RSA_"):
        kex = "RSA"
    else:
        kex = "other"
    prf = "SHA384" if name.endswith("SHA384") else "SHA256"
    return CipherSuite(code, name, kex, cipher, mac, prf)


_SUITES = [
    # TLS 1.3 (RFC 8446 B.4)
    _s(0x1301, "TLS_AES_128_GCM_SHA256", "AES-128-GCM"),
    _s(0x1302, "TLS_AES_256_GCM_SHA384", "AES-256-GCM"),
    _s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305"),
    _s(0x1304, "TLS_AES_128_CCM_SHA256", "AES-128-CCM"),
    _s(0x1305, "TLS_AES_128_CCM_8_SHA256", "AES-128-CCM-8"),
    # AES-GCM (RFC 5288, 5289)
    _s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM"),
    _s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM"),
    _s(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM"),
    _s(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM"),
    _s(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM"),
    _s(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM"),
    _s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM"),
    _s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM"),
    # ChaCha20-Poly1305 (RFC 7905)
    _s(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305"),
    _s(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305"),
    _s(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305"),
    # AES-CCM (RFC 6655, 7251)
    _s(0xC09C, "TLS_RSA_WITH_AES_128_CCM", "AES-128-CCM"),
    _s(0xC09D, "TLS_RSA_WITH_AES_256_CCM", "AES-256-CCM"),
    _s(0xC09E, "TLS_DHE_RSA_WITH_AES_128_CCM", "AES-128-CCM"),
    _s(0xC09F, "TLS_DHE_RSA_WITH_AES_256_CCM", "AES-256-CCM"),
    _s(0xC0A0, "TLS_RSA_WITH_AES_128_CCM_8", "AES-128-CCM-8"),
    _s(0xC0A1, "TLS_RSA_WITH_AES_256_CCM_8", "AES-256-CCM-8"),
    _s(0xC0AC, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", "AES-128-CCM"),
    _s(0xC0AD, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM", "AES-256-CCM"),
    _s(0xC0AE, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", "AES-128-CCM-8"),
    _s(0xC0AF, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", "AES-256-CCM-8"),
    # AES-CBC (RFC 5246, 5289)
    _s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES-128-CBC", "SHA1"),
    _s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES-256-CBC", "SHA1"),
    _s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES-128-CBC", "SHA256"),
    _s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "AES-256-CBC", "SHA256"),
    _s(0x0033, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA", "AES-128-CBC", "SHA1"),
    _s(0x0039, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "AES-256-CBC", "SHA1"),
    _s(0x0067, "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", "AES-128-CBC", "SHA256"),
    _s(0x006B, "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "AES-256-CBC", "SHA256"),
    _s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "AES-128-CBC", "SHA1"),
    _s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "AES-256-CBC", "SHA1"),
    _s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "AES-128-CBC", "SHA1"),
    _s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "AES-256-CBC", "SHA1"),
    _s(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "AES-128-CBC", "SHA256"),
    _s(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "AES-256-CBC", "SHA384"),
    _s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "AES-128-CBC", "SHA256"),
    _s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "AES-256-CBC", "SHA384"),
    # Named only: not decrypted.
    _s(0x0000, "TLS_NULL_WITH_NULL_NULL"),
    _s(0x0004, "TLS_RSA_WITH_RC4_128_MD5"),
    _s(0x0005, "TLS_RSA_WITH_RC4_128_SHA"),
    _s(0x000A, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
    _s(0x0016, "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    _s(0xC011, "TLS_ECDHE_RSA_WITH_RC4_128_SHA"),
    _s(0xC012, "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"),
    _s(0x0041, "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA"),
    _s(0xC076, "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256"),
    _s(0xC077, "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384"),
    _s(0xC060, "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"),
    _s(0xC061, "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384"),
    _s(0x0084, "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA"),
    _s(0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
    _s(0x5600, "TLS_FALLBACK_SCSV"),
]
_BY_CODE = {s.code: s for s in _SUITES}


def suite(code: int) -> CipherSuite:
    """The suite with this code; an unnamed, unsupported one for codes not in the table."""
    found = _BY_CODE.get(code)
    if found is not None:
        return found
    return CipherSuite(code, f"0x{code:04X}", "other")


def suite_name(code: int) -> str:
    return suite(code).name


_VERSIONS = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}


def version_name(version: int) -> str:
    return _VERSIONS.get(version, f"0x{version:04X}")
