"""Decrypt real sessions: openssl s_client -> recording relay -> openssl s_server, forced to each
suite and version; the decrypted bytes must be exactly what each application sent."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailsniff.protocols.base import Direction
from mailsniff.tls import KeyLog, TlsAlert, TlsData, TlsHandshake, TlsUndecryptable
from tests.servers import free_port
from tests.tls.recording import (
    Relay,
    decrypt,
    make_cert,
    openssl_session,
    openssl_sessions,
    wait_accept,
)

C, S = Direction.CLIENT, Direction.SERVER

# (client options, server options, key type, IANA name, version, forward secrecy, ETM)
MATRIX = [
    ("-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256", "", "rsa", "TLS_AES_128_GCM_SHA256",
     0x0304, True, False),
    ("-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384", "", "ecdsa", "TLS_AES_256_GCM_SHA384",
     0x0304, True, False),
    ("-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256", "", "rsa",
     "TLS_CHACHA20_POLY1305_SHA256", 0x0304, True, False),
    ("-tls1_3 -ciphersuites TLS_AES_128_CCM_SHA256", "-ciphersuites TLS_AES_128_CCM_SHA256",
     "rsa", "TLS_AES_128_CCM_SHA256", 0x0304, True, False),
    ("-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", "", "rsa",
     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0x0303, True, False),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384", "", "ecdsa",
     "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0x0303, True, False),
    ("-tls1_2 -cipher DHE-RSA-AES256-GCM-SHA384", "", "rsa",
     "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", 0x0303, True, False),
    ("-tls1_2 -cipher AES128-GCM-SHA256", "", "rsa", "TLS_RSA_WITH_AES_128_GCM_SHA256",
     0x0303, False, False),
    ("-tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305", "", "rsa",
     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0x0303, True, False),
    ("-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305", "", "ecdsa",
     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0x0303, True, False),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES128-CCM8", "-cipher ECDHE-ECDSA-AES128-CCM8", "ecdsa",
     "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 0x0303, True, False),
    # AES-CBC: encrypt-then-MAC (OpenSSL's default) and MAC-then-encrypt (-no_etm)
    ("-tls1_2 -cipher AES128-SHA", "", "rsa", "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0303, False,
     True),
    ("-tls1_2 -cipher AES256-SHA -no_etm", "", "rsa", "TLS_RSA_WITH_AES_256_CBC_SHA", 0x0303,
     False, False),
    ("-tls1_2 -cipher ECDHE-RSA-AES128-SHA256", "", "rsa",
     "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0x0303, True, True),
    ("-tls1_2 -cipher ECDHE-RSA-AES128-SHA256 -no_etm", "", "rsa",
     "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0x0303, True, False),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384", "", "ecdsa",
     "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", 0x0303, True, True),
    ("-tls1_2 -cipher ECDHE-RSA-AES256-SHA384 -no_etm", "", "rsa",
     "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 0x0303, True, False),
    ("-tls1_2 -cipher DHE-RSA-AES128-SHA", "", "rsa", "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
     0x0303, True, True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("client", "server", "kind", "name", "version", "pfs", "etm"),
    MATRIX,
    ids=[m[3] + ("-no_etm" if "no_etm" in m[0] else "") for m in MATRIX],
)
def test_decrypts_each_suite_exactly(
    tmp_path: Path, client: str, server: str, kind: str, name: str, version: int, pfs: bool,
    etm: bool,
) -> None:  # fmt: skip
    session = openssl_session(tmp_path, client.split(), server.split(), kind=kind)
    keylog = KeyLog(session.keylog)
    assert keylog.refresh() >= 1 and keylog.bad == 0
    result = decrypt(session.relay.chunks, keylog)
    info = result.conn.info
    assert info.cipher_suite_name == name
    assert info.version == version
    assert info.sni == "mail.example.test"
    assert info.decrypted, info.problems
    assert info.forward_secrecy is pfs
    assert info.legacy_version is False
    assert info.encrypt_then_mac is etm
    assert info.extended_master_secret is (version == 0x0303)
    # Exactly what the client application wrote, and what it read back.
    assert result.plain[C] == session.sent
    assert result.plain[S] == session.received
    assert session.received.startswith(b"dlrow olleh\n")
    # Both sides end with a close_notify alert, decrypted.
    alerts = [e for e in result.events if isinstance(e, TlsAlert)]
    assert {(a.direction, a.description_name, a.encrypted) for a in alerts} >= {
        (S, "close_notify", True)
    }
    assert info.records_decrypted >= 3


def test_no_key_is_reported_with_the_client_random(tmp_path: Path) -> None:
    session = openssl_session(tmp_path, ["-tls1_3"], [])
    result = decrypt(session.relay.chunks, KeyLog())
    info = result.conn.info
    assert not info.decrypted and not info.keys_found
    assert result.plain == {C: b"", S: b""}
    assert any(f"no key for client random {info.client_random.hex()}" in p for p in info.problems)
    # Still parsed: version and suite from the ServerHello.
    assert info.version_name == "TLS 1.3" and info.cipher_suite_name is not None


def test_unsupported_suite_is_named_and_not_decrypted(tmp_path: Path) -> None:
    aria = ["-cipher", "ECDHE-ARIA128-GCM-SHA256"]
    session = openssl_session(tmp_path, ["-tls1_2", *aria], aria)
    keylog = KeyLog(session.keylog)
    keylog.refresh()
    result = decrypt(session.relay.chunks, keylog)
    info = result.conn.info
    assert info.cipher_suite_name == "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256"
    assert not info.decrypted
    assert any("not supported for decryption" in p for p in info.problems)
    assert result.plain == {C: b"", S: b""}


def test_tls10_is_flagged_as_legacy(tmp_path: Path) -> None:
    cipher = ["-cipher", "AES128-SHA@SECLEVEL=0"]
    session = openssl_session(tmp_path, ["-tls1", *cipher], ["-tls1", *cipher])
    keylog = KeyLog(session.keylog)
    keylog.refresh()
    info = decrypt(session.relay.chunks, keylog).conn.info
    assert info.version_name == "TLS 1.0"
    assert info.legacy_version and info.forward_secrecy is False
    assert any("decryption of TLS 1.0 is not supported" in p for p in info.problems)


def test_key_update_in_both_directions(tmp_path: Path) -> None:
    """s_client's "K" command sends a KeyUpdate asking the server to update too."""
    lines = b"before the update\n"
    session = openssl_session(
        tmp_path, ["-tls1_3", "-no_ign_eof"], [], lines=lines, commands=[b"K\n", b"after\n"]
    )
    keylog = KeyLog(session.keylog)
    keylog.refresh()
    result = decrypt(session.relay.chunks, keylog)
    updates = [
        e.direction for e in result.events if isinstance(e, TlsHandshake) and e.name == "KeyUpdate"
    ]
    assert sorted(updates) == [C, S]
    assert result.conn.info.decrypted, result.conn.info.problems
    assert result.plain[C] == b"before the update\nafter\nCLOSE\n"
    # (s_client, told to quit at the end of its input, may not wait for the last reply)
    assert result.plain[S] == b"etadpu eht erofeb\nretfa\n"
    assert result.plain[S].startswith(session.received)


def test_hello_retry_request_and_alpn(tmp_path: Path) -> None:
    session = openssl_session(
        tmp_path,
        ["-tls1_3", "-groups", "X25519:P-256", "-alpn", "smtp,imap"],
        ["-groups", "P-256", "-alpn", "imap"],
    )
    keylog = KeyLog(session.keylog)
    keylog.refresh()
    result = decrypt(session.relay.chunks, keylog)
    info = result.conn.info
    assert info.hello_retry
    assert info.alpn_offered == ("smtp", "imap") and info.alpn == "imap"
    assert info.decrypted, info.problems
    assert result.plain[C] == session.sent and result.plain[S] == session.received


def _rsa_pre_master(chunks: list[tuple[Direction, bytes]], key_file: Path) -> tuple[bytes, bytes]:
    """(encrypted, decrypted) pre-master secret of an RSA key exchange, with the server's key."""
    stream = b"".join(d for direction, d in chunks if direction is C)
    at = stream.index(b"\x16\x03\x03", 5)  # the record after the ClientHello's
    msg = stream[at + 5 :]
    assert msg[0] == 16  # ClientKeyExchange
    encrypted = msg[6 : 6 + int.from_bytes(msg[4:6], "big")]
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return encrypted, key.decrypt(encrypted, padding.PKCS1v15())


@pytest.mark.parametrize("label", ["PMS_CLIENT_RANDOM", "RSA"])
def test_extended_master_secret_from_pre_master_secret(tmp_path: Path, label: str) -> None:
    """Only the pre-master secret known: the master secret is derived with the session hash
    of the handshake messages (RFC 7627), which OpenSSL negotiates by default."""
    session = openssl_session(tmp_path, ["-tls1_2", "-cipher", "AES256-GCM-SHA384"], [])
    _, key_file = make_cert(tmp_path, "rsa")
    encrypted, pms = _rsa_pre_master(session.relay.chunks, key_file)
    full = KeyLog(session.keylog)
    full.refresh()
    probe = decrypt(session.relay.chunks, full).conn.info
    keylog = KeyLog()
    if label == "RSA":
        keylog.add_text(f"RSA {encrypted[:8].hex()} {pms.hex()}\n")
    else:
        keylog.add_text(f"PMS_CLIENT_RANDOM {probe.client_random.hex()} {pms.hex()}\n")
    assert keylog.keys == 1
    result = decrypt(session.relay.chunks, keylog)
    assert result.conn.info.extended_master_secret
    assert result.conn.info.decrypted, result.conn.info.problems
    assert result.plain[C] == session.sent and result.plain[S] == session.received


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_resumed_session(tmp_path: Path, version: str) -> None:
    """A session saved by the first connection and resumed by the second (TLS 1.2 ticket,
    TLS 1.3 PSK): the second has its own key log entry and decrypts too."""
    saved = str(tmp_path / "session.pem")
    first, second = openssl_sessions(
        tmp_path, [[version, "-sess_out", saved], [version, "-sess_in", saved]], []
    )
    for session, resumed in ((first, False), (second, True)):
        keylog = KeyLog(session.keylog)
        keylog.refresh()
        result = decrypt(session.relay.chunks, keylog)
        info = result.conn.info
        assert info.resumed is resumed
        assert info.decrypted, info.problems
        assert result.plain[C] == session.sent and result.plain[S] == session.received
    names = [e.name for e in result.events if isinstance(e, TlsHandshake) and e.direction is S]
    assert "Certificate" not in names  # really abbreviated


def _early_data_session(tmp_path: Path) -> tuple[Relay, Path]:
    """Two connections to `openssl s_server -early_data`: the first gets a ticket, the second
    resumes with it and sends 0-RTT data. Returns the second's recording and key log."""
    cert, key = make_cert(tmp_path, "rsa")
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-naccept", "2", "-early_data"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    saved, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"early bird data\n")
    keylog = tmp_path / "early-keys.log"
    try:
        wait_accept(server)
        for args, lines in (
            (["-sess_out", str(saved)], b"first\n"),
            (["-sess_in", str(saved), "-early_data", str(early), "-keylogfile", str(keylog)],
             b"second\n"),
        ):  # fmt: skip
            with Relay(port) as relay:
                client = subprocess.Popen(
                    ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-quiet",
                     "-no_ign_eof", "-tls1_3", *args],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                assert client.stdin is not None
                time.sleep(0.3)
                client.stdin.write(lines)
                client.stdin.flush()
                time.sleep(0.5)
                client.stdin.close()
                client.wait(20)
    finally:
        server.kill()
        server.wait()
    return relay, keylog


def test_early_data(tmp_path: Path) -> None:
    relay, keylog_path = _early_data_session(tmp_path)
    keylog = KeyLog(keylog_path)
    keylog.refresh()
    result = decrypt(relay.chunks, keylog)
    info = result.conn.info
    assert info.early_data_offered and info.early_data_accepted and info.resumed
    assert info.decrypted, info.problems
    data = [(e.data, e.early) for e in result.events if isinstance(e, TlsData) and e.direction is C]
    assert data == [(b"early bird data\n", True), (b"second\n", False)]
    # Without the early secret: the 0-RTT record is reported, the rest still decrypts.
    partial = KeyLog()
    partial.add_text(
        "\n".join(
            line
            for line in keylog_path.read_text().splitlines()
            if not line.startswith("CLIENT_EARLY_TRAFFIC_SECRET")
        )
    )
    result = decrypt(relay.chunks, partial)
    assert result.plain[C] == b"second\n"
    lost = [e for e in result.events if isinstance(e, TlsUndecryptable)]
    # the early data record and the EndOfEarlyData message, both under the early secret
    assert [(e.direction, e.rest, e.reason) for e in lost] == 2 * [
        (C, False, "0-RTT early data (not decrypted: no CLIENT_EARLY_TRAFFIC_SECRET)")
    ]


def test_cleartext_handshake_failure_alert(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, "rsa")
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-naccept", "1", "-tls1_2", "-cipher", "AES256-SHA"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_accept(server)
        with Relay(port) as relay:
            subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-tls1_2",
                 "-cipher", "AES128-SHA"],
                input=b"", capture_output=True, timeout=20,
            )  # fmt: skip
    finally:
        server.kill()
        server.wait()
    result = decrypt(relay.chunks, KeyLog())
    alerts = [e for e in result.events if isinstance(e, TlsAlert)]
    assert [(a.direction, a.level_name, a.description_name, a.encrypted) for a in alerts] == [
        (S, "fatal", "handshake_failure", False)
    ]
    info = result.conn.info
    assert info.version is None and not info.decrypted and info.sni is None
