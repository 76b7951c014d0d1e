"""TLS decryption with a key log (SSLKEYLOGFILE): a sans-IO record layer per connection.

`TlsConnection` is fed the reassembled bytes of each direction (as the mail parsers are) and
emits typed events (`mailsniff.tls.events`): decrypted application data with the stream offset
of its record, handshake messages, alerts, gaps, undecryptable stretches with their reason, and
anomalies. `KeyLog` reads the NSS key log format, also incrementally while it grows.

Fitting it into a reading pipeline, per TCP connection whose bytes are TLS (an implicit-TLS
port, or the bytes after STARTTLS/STLS once `starts_with_tls` says so):

    keylog = KeyLog(path); keylog.refresh()          # live: refresh() now and then
    tls = TlsConnection(keylog, wait_for_keys=live)
    for event in tls.feed(ts, direction, data):      # and tls.gap(...), tls.close(ts)
        if isinstance(event, TlsData):               # plaintext, in order, per direction
            inner.feed(event.ts_ns, event.direction, event.data)   # e.g. an SmtpParser
        ...                                          # other events: anomalies, gaps, alerts
    tls.info                                         # version, suite, SNI, ALPN, problems

`event.offset` counts from the first byte fed to this connection in that direction (add the
offset where TLS started to mark decrypted lines in a transcript). A record that cannot be
decrypted is never guessed at: it is reported with its reason and position.
"""

from mailsniff.tls import events
from mailsniff.tls.connection import TlsConnection
from mailsniff.tls.detect import starts_with_tls
from mailsniff.tls.events import *  # noqa: F403 - the event types are this package's vocabulary
from mailsniff.tls.keylog import KeyLog, KeyLogProblem
from mailsniff.tls.suites import CipherSuite, suite, suite_name, version_name

__all__ = [
    "CipherSuite",
    "KeyLog",
    "KeyLogProblem",
    "TlsConnection",
    "starts_with_tls",
    "suite",
    "suite_name",
    "version_name",
]
__all__ += events.__all__
