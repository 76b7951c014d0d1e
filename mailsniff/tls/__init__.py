"""TLS decryption with a key log (SSLKEYLOGFILE): a sans-IO record layer per connection.

`TlsConnection` is fed the reassembled bytes of each direction (as the mail parsers are) and
emits typed events (`mailsniff.tls.events`): decrypted application data with the stream offset
of its record, handshake messages, alerts, gaps, undecryptable stretches with their reason, and
anomalies. `KeyLog` reads the NSS key log format, also incrementally while it grows.
"""

from mailsniff.tls.connection import TlsConnection
from mailsniff.tls.detect import starts_with_tls
from mailsniff.tls.events import (
    DecryptFailure,
    TlsAlert,
    TlsAnomaly,
    TlsData,
    TlsDecryptError,
    TlsEvent,
    TlsGap,
    TlsHandshake,
    TlsInfo,
    TlsParameters,
    TlsUndecryptable,
)
from mailsniff.tls.keylog import KeyLog, KeyLogProblem
from mailsniff.tls.suites import CipherSuite, suite, suite_name, version_name

__all__ = [
    "CipherSuite",
    "DecryptFailure",
    "KeyLog",
    "KeyLogProblem",
    "TlsAlert",
    "TlsAnomaly",
    "TlsConnection",
    "TlsData",
    "TlsDecryptError",
    "TlsEvent",
    "TlsGap",
    "TlsHandshake",
    "TlsInfo",
    "TlsParameters",
    "TlsUndecryptable",
    "starts_with_tls",
    "suite",
    "suite_name",
    "version_name",
]
