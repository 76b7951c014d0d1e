"""The read path on each TLS suite real mail software negotiates: `openssl s_client -starttls smtp`
forced to one suite and version, against aiosmtpd, sniffed on `lo`, then `mailsniff read --keylog`:
the session names the suite, is decrypted, the SMTP dialogue inside TLS is parsed, and the lines
shown as decrypted are what tshark's `follow,tls` decrypts from the same capture and key log."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsniff.protocols.base import Direction
from mailsniff.send.capture import PacketCapture
from tests.cli_runner import read_json
from tests.servers import SmtpServer, running_smtp
from tests.tls.test_read_keylog_implicit import _decrypted_lines, _lines, _tshark_plain

C, S = Direction.CLIENT, Direction.SERVER

# (s_client options, IANA name, version, forward secrecy)
SUITES = [
    ("-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", "TLS 1.3", True),
    ("-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", "TLS 1.3", True),
    ("-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256",
     "TLS 1.3", True),
    ("-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305",
     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS 1.2", True),
    # AES-CBC with HMAC-SHA1/SHA256/SHA384: encrypt-then-MAC (OpenSSL's default) and
    # MAC-then-encrypt (-no_etm)
    ("-tls1_2 -cipher ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS 1.2",
     True),
    ("-tls1_2 -cipher ECDHE-RSA-AES256-SHA -no_etm", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-RSA-AES128-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-RSA-AES256-SHA384 -no_etm", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
     "TLS 1.2", True),
    # Finite-field DHE (RFC 7919 group) and ECDSA certificates
    ("-tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
     "TLS 1.2", True),
    ("-tls1_2 -cipher DHE-RSA-AES256-SHA256", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", "TLS 1.2",
     True),
    ("-tls1_2 -cipher DHE-RSA-CHACHA20-POLY1305", "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256",
     "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
     "TLS 1.2", True),
    ("-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305",
     "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS 1.2", True),
    ("-tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 -sigalgs ECDSA+SHA256",
     "TLS_AES_128_GCM_SHA256", "TLS 1.3", True),
    # RSA key transport: decrypted, and flagged as without forward secrecy
    ("-tls1_2 -cipher AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2", False),
    ("-tls1_2 -cipher AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS 1.2", False),
]  # fmt: skip

COMMANDS = (
    b"EHLO suite.example\r\n"
    b"MAIL FROM:<alice@example.com>\r\n"
    b"RCPT TO:<bob@example.com>\r\n"
    b"DATA\r\n"
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: one suite\r\n"
    b"\r\n"
    b"read inside TLS\r\n"
    b".\r\n"
    b"QUIT\r\n"
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with running_smtp(ciphers="ALL:@SECLEVEL=0") as server:
        yield server


@pytest.mark.parametrize(
    ("options", "name", "version", "pfs"),
    SUITES,
    ids=[s[1] + ("-ecdsa-cert" if "-sigalgs ECDSA" in s[0] else "") for s in SUITES],
)
def test_starttls_suite_reads_like_cleartext_and_agrees_with_tshark(
    smtp: SmtpServer, tmp_path: Path, options: str, name: str, version: str, pfs: bool
) -> None:
    pcap, keys = tmp_path / "suite.pcap", tmp_path / "suite.keys"
    capture = PacketCapture(pcap)
    with capture.watch("127.0.0.1", smtp.port):
        client = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{smtp.port}", "-starttls", "smtp",
             "-quiet", "-keylogfile", str(keys), *options.split()],
            input=COMMANDS, capture_output=True, timeout=60,
        )  # fmt: skip
    assert client.returncode == 0, client.stderr
    assert capture.save() > 0
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    info = s["tls_info"]
    assert (info["cipher_suite"], info["version"]) == (name, version)
    assert info["decrypted"] is True, info
    assert info["forward_secrecy"] is pfs
    kinds = {f["kind"] for f in s["findings"]}
    assert ("tls-no-forward-secrecy" in kinds) is not pfs
    [txn] = s["transactions"]
    assert (txn["mail_from"], txn["rcpt_to"]) == ("alice@example.com", ["bob@example.com"])
    assert txn["message"]["subject"] == "one suite"
    assert txn["data_reply"].startswith("250")
    theirs = _tshark_plain(pcap, keys, smtp.port, f"tcp.port=={smtp.port},smtp")
    ours = _decrypted_lines(s)
    assert ours[S] == _lines(theirs[S])
    assert ours[C][:4] == _lines(theirs[C])[:4]  # EHLO, MAIL, RCPT, DATA; then the message
