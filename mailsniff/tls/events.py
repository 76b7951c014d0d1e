"""What a `TlsConnection` reports: typed events, and the connection's summary (`TlsInfo`).

Every event carries the direction and the stream offset (bytes from the start of that direction
as fed to the connection, gaps included) of the record it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailsniff.model import Direction
from mailsniff.tls.suites import suite, version_name

__all__ = [
    "ALERT_DESCRIPTIONS",
    "DecryptFailure",
    "TlsAlert",
    "TlsAnomaly",
    "TlsAnomalyKind",
    "TlsData",
    "TlsDecryptError",
    "TlsEvent",
    "TlsGap",
    "TlsHandshake",
    "TlsInfo",
    "TlsParameters",
    "TlsUndecryptable",
]

ALERT_DESCRIPTIONS = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed",
    22: "record_overflow",
    30: "decompression_failure",
    40: "handshake_failure",
    41: "no_certificate",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    100: "no_renegotiation",
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


@dataclass(frozen=True, slots=True)
class DecryptFailure:
    """A record that failed authentication: where it is, never a guess at why."""

    direction: Direction
    offset: int
    record: int  # 0-based number of the record in its direction


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """One TLS connection as far as it was seen. Fields unknown so far are None or empty."""

    version: int | None = None  # negotiated, e.g. 0x0303
    cipher_suite: int | None = None
    sni: str | None = None
    alpn_offered: tuple[str, ...] = ()
    alpn: str | None = None  # selected by the server (TLS 1.3: from EncryptedExtensions)
    client_random: bytes = b""
    #: Resumption: TLS 1.2 session id echoed or ticket, TLS 1.3 pre-shared key accepted.
    resumed: bool = False
    session_ticket: bool = False  # ticket extension negotiated, or a NewSessionTicket sent
    extended_master_secret: bool = False
    encrypt_then_mac: bool = False  # negotiated (applies to CBC suites only)
    hello_retry: bool = False
    early_data_offered: bool = False
    early_data_accepted: bool = False  # TLS 1.3 EncryptedExtensions (seen when decrypted)
    #: Keys found for this connection and used on its records.
    keys_found: bool = False
    #: Application-data records decrypted, and their plaintext bytes, both directions.
    records_decrypted: int = 0
    bytes_decrypted: int = 0
    #: Why not everything could be decrypted, in the order found (empty when all was).
    problems: tuple[str, ...] = ()
    failures: tuple[DecryptFailure, ...] = ()

    @property
    def version_name(self) -> str | None:
        return version_name(self.version) if self.version is not None else None

    @property
    def cipher_suite_name(self) -> str | None:
        return suite(self.cipher_suite).name if self.cipher_suite is not None else None

    @property
    def decrypted(self) -> bool:
        """Keys were found and every record seen was decrypted and authenticated."""
        return self.keys_found and not self.problems

    @property
    def legacy_version(self) -> bool:
        """Negotiated below TLS 1.2 (SSL 3.0, TLS 1.0, TLS 1.1: deprecated by RFC 8996)."""
        return self.version is not None and self.version < 0x0303

    @property
    def forward_secrecy(self) -> bool | None:
        """False for static RSA key transport (recorded traffic falls to the server's key)."""
        if self.version == 0x0304:
            return True
        if self.cipher_suite is None:
            return None
        return suite(self.cipher_suite).forward_secrecy


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    ts_ns: int
    direction: Direction
    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsParameters(_Event):
    """The ServerHello was seen (again after a HelloRetryRequest); `info` as of then."""

    info: TlsInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsHandshake(_Event):
    """A handshake message; `encrypted` when it was read from a decrypted record."""

    record: int
    msg_type: int
    name: str
    length: int
    encrypted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsData(_Event):
    """Decrypted, authenticated application data of one record (`offset`: the record's)."""

    record: int
    data: bytes
    #: 0-RTT data (TLS 1.3 early data), sent before the handshake completed; replayable.
    early: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsAlert(_Event):
    """An alert; level and description are None when it was encrypted and could not be read."""

    record: int
    level: int | None
    description: int | None
    encrypted: bool

    @property
    def level_name(self) -> str:
        return {1: "warning", 2: "fatal"}.get(self.level or 0, "unknown")

    @property
    def description_name(self) -> str:
        if self.description is None:
            return "unknown (encrypted)"
        return ALERT_DESCRIPTIONS.get(self.description, f"unknown ({self.description})")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsGap(_Event):
    """`length` bytes of the direction were never captured (0: an unknown amount)."""

    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsUndecryptable(_Event):
    """Records from `offset` on are not decrypted: `rest` for the rest of the direction,
    else just `records` records."""

    reason: str
    rest: bool
    records: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsDecryptError(_Event):
    """A record failed authentication (wrong key, corrupted or injected bytes)."""

    record: int
    detail: str


class TlsAnomalyKind(StrEnum):
    """The anomalies the TLS decoder reports; the value is the name a session's anomaly shows."""

    TRUNCATED_RECORD = "tls-truncated-record"  # the connection ended inside a record
    TRUNCATED_HANDSHAKE = "tls-truncated-handshake"  # it ended inside a handshake message
    NOT_A_RECORD = "tls-not-a-record"  # bytes that are no TLS record header: the rest not read
    RECORD_TOO_LONG = "tls-record-too-long"  # a record longer than TLS allows
    RENEGOTIATION = "tls-renegotiation"  # a second handshake: its keys are not derived
    UNEXPECTED_CONTENT_TYPE = "tls-unexpected-content-type"  # a decrypted record of no known type
    HEARTBEAT = "tls-heartbeat"  # a heartbeat record (RFC 6520)
    HANDSHAKE_TOO_LONG = "tls-handshake-too-long"  # a handshake message beyond the kept size
    BAD_HANDSHAKE = "tls-bad-handshake"  # a ClientHello or ServerHello that does not parse
    KEY_CHANGE_NOT_AT_RECORD_END = "tls-key-change-not-at-record-end"  # RFC 8446 5.1 broken
    BAD_ALERT = "tls-bad-alert"  # an alert record that is not whole two-byte alerts


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsAnomaly(_Event):
    """Something a correct TLS peer would not send, or damage to the stream."""

    kind: TlsAnomalyKind
    detail: str


TlsEvent = (
    TlsParameters
    | TlsHandshake
    | TlsData
    | TlsAlert
    | TlsGap
    | TlsUndecryptable
    | TlsDecryptError
    | TlsAnomaly
)
