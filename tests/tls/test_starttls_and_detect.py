"""TLS after STARTTLS against a real SMTP server (aiosmtpd), found with `starts_with_tls`; the
detector itself; and decryption that does not depend on how the bytes were chunked."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from mailsniff.protocols.base import Direction
from mailsniff.tls import KeyLog, TlsConnection, TlsData, TlsEvent, starts_with_tls
from tests.servers import running_smtp
from tests.tls.recording import Relay, decrypt, python_session

C, S = Direction.CLIENT, Direction.SERVER


def _tls_start(stream: bytes) -> int:
    """Offset of the first line start from which the stream is TLS."""
    pos = 0
    while pos < len(stream):
        if starts_with_tls(stream[pos:]):
            return pos
        nl = stream.find(b"\n", pos)
        assert nl >= 0, "no TLS found"
        pos = nl + 1
    raise AssertionError("no TLS found")


def test_starttls_smtp_session_decrypted(tmp_path: Path) -> None:
    commands = b"EHLO tls.example\r\nMAIL FROM:<alice@example.com>\r\nQUIT\r\n"
    keylog_path = tmp_path / "smtp-keys.log"
    with running_smtp() as server, Relay(server.port) as relay:
        client = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-starttls", "smtp",
             "-quiet", "-keylogfile", str(keylog_path)],
            input=commands, capture_output=True, timeout=30,
        )  # fmt: skip
    client_stream, server_stream = relay.stream(C), relay.stream(S)
    c_at, s_at = _tls_start(client_stream), _tls_start(server_stream)
    assert client_stream[:c_at].endswith(b"STARTTLS\r\n")
    assert server_stream[:s_at].startswith(b"220 ") and b"220 " in server_stream[s_at - 40 : s_at]
    keylog = KeyLog(keylog_path)
    keylog.refresh()
    conn = TlsConnection(keylog)
    events: list[TlsEvent] = []
    taken = {C: 0, S: 0}
    start = {C: c_at, S: s_at}
    for i, (d, data) in enumerate(relay.chunks):  # as the pipeline would: TLS part only
        skip = max(0, start[d] - taken[d])
        taken[d] += len(data)
        if data[skip:]:
            events += conn.feed(i, d, data[skip:])
    events += conn.close(999)
    plain = {d: b"".join(e.data for e in events if isinstance(e, TlsData) and e.direction is d)
             for d in Direction}  # fmt: skip
    assert conn.info.decrypted, conn.info.problems
    assert plain[C] == commands
    assert plain[S].startswith(b"250-") and b"\r\n250 OK\r\n" in plain[S]
    assert plain[S].endswith(b"221 Bye\r\n")
    assert plain[S] in client.stdout  # what s_client printed, after its STARTTLS exchange
    # Offsets are stream offsets of the TLS part (the caller adds where TLS began).
    first = next(e for e in events if isinstance(e, TlsData) and e.direction is C)
    assert client_stream[c_at + first.offset] == 23


@pytest.mark.parametrize(
    ("data", "handshake", "want"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", True, True),  # ClientHello
        (b"\x16\x03\x03\x00\x5a\x02", True, True),  # ServerHello
        (b"\x16\x03", True, None),  # not enough bytes yet
        (b"", True, None),
        (b"\x16\x03\x01\x02\x00\x0b", True, False),  # a Certificate cannot come first
        (b"\x17\x03\x03\x00\x20", True, False),  # application data: not a TLS start
        (b"\x17\x03\x03\x00\x20", False, True),  # but a record
        (b"\x16\x03\x01\xff\xff", True, False),  # longer than any record
        (b"\x16\x03\x01\x00\x00", True, False),
        (b"\x16\x02\x00\x00\x10", True, False),  # SSL 2-ish
        (b"\x80\x2e\x01\x03\x01", True, False),  # SSLv2-format ClientHello
        (b"EHLO example.com\r\n", True, False),
        (b"220 mail.example.com ESMTP\r\n", False, False),
    ],
)
def test_starts_with_tls(data: bytes, handshake: bool, want: bool | None) -> None:
    assert starts_with_tls(data, handshake=handshake) is want


def test_chunking_does_not_change_the_result(tmp_path: Path) -> None:
    """Real sessions fed whole, or cut at random points: the same events."""
    s = python_session(tmp_path, os.urandom(20_000), os.urandom(50_000), version="1.2",
                       ciphers="ECDHE-RSA-CHACHA20-POLY1305")  # fmt: skip
    keylog = KeyLog(s.keylog)
    keylog.refresh()
    whole = decrypt(s.relay.chunks, keylog)
    assert whole.plain == {C: s.client_sent, S: s.server_sent}
    assert whole.conn.info.cipher_suite_name == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
    rng = random.Random(3)
    pieces: list[tuple[Direction, bytes]] = []
    for d, data in s.relay.chunks:
        pos = 0
        while pos < len(data):
            n = rng.choice([1, 2, 3, 5, 7, 100, 1500, 20000])
            pieces.append((d, data[pos : pos + n]))
            pos += n
    cut = decrypt(pieces, keylog)
    strip = [(type(e).__name__, e.direction, e.offset, getattr(e, "data", None))
             for e in cut.events]  # fmt: skip
    assert strip == [(type(e).__name__, e.direction, e.offset, getattr(e, "data", None))
                     for e in whole.events]  # fmt: skip
    # And each direction fed whole, client first: client records wait for the ServerHello.
    one_by_one = decrypt([(C, s.relay.stream(C)), (S, s.relay.stream(S))], keylog)
    assert one_by_one.plain == whole.plain and one_by_one.conn.info.decrypted
