"""`openssl s_client -starttls imap` and `-starttls pop3` against dovecot, sniffed on `lo`, TLS 1.3
and 1.2: `read --keylog` shows the login and the message fetched inside TLS, and the decrypted
command lines are what tshark's `follow,tls` decrypts from the same capture and key log."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsniff.protocols.base import Direction
from mailsniff.send.capture import PacketCapture
from tests.cli_runner import read_json
from tests.servers import (
    IMAP_MESSAGES,
    POP3_MESSAGES,
    ImapServer,
    Pop3Server,
    running_dovecot,
    running_dovecot_imap,
)
from tests.tls.test_read_keylog_implicit import _decrypted_lines, _lines, _tshark_plain

C = Direction.CLIENT

VERSIONS = [("-tls1_3", "TLS 1.3"), ("-tls1_2", "TLS 1.2")]


@pytest.fixture(scope="module")
def imap() -> Iterator[ImapServer]:
    with running_dovecot_imap(tls=True) as server:
        time.sleep(1)  # the readiness probe's connection ends before the first capture starts
        yield server


@pytest.fixture(scope="module")
def pop3() -> Iterator[Pop3Server]:
    with running_dovecot() as server:
        time.sleep(1)  # the readiness probe's connection ends before the first capture starts
        yield server


def _s_client(port: int, protocol: str, version: str, keys: Path, pcap: Path, lines: bytes) -> None:
    """s_client's STARTTLS for `protocol`, then `lines` written inside TLS; it waits for the
    server to close (-ign_eof), which LOGOUT / QUIT asks for."""
    capture = PacketCapture(pcap)
    with capture.watch("127.0.0.1", port):
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", protocol,
             "-quiet", "-ign_eof", "-keylogfile", str(keys), version],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert client.stdin is not None
        # One line at a time, as a person types, after the handshake: a client's first
        # application data in the segment that ends its handshake is read by mailsniff but not
        # always by tshark's follow,tls, and the comparison needs both.
        time.sleep(1.0)
        for line in lines.splitlines(keepends=True):
            client.stdin.write(line)
            client.stdin.flush()
            time.sleep(0.2)
        try:
            _, stderr = client.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            client.kill()
            raise
    assert client.returncode == 0, stderr
    assert capture.save() > 0


def _subject(message: bytes) -> str:
    head = message.split(b"\r\n\r\n", 1)[0].decode()
    return next(x for x in head.split("\r\n") if x.startswith("Subject: "))[len("Subject: ") :]


@pytest.mark.parametrize(("option", "version"), VERSIONS)
def test_s_client_starttls_imap_reads_inside_tls(
    imap: ImapServer, tmp_path: Path, option: str, version: str
) -> None:
    pcap, keys = tmp_path / "imap.pcap", tmp_path / "imap.keys"
    commands = (
        f"a1 LOGIN {imap.user} {imap.password}\r\n"
        "a2 SELECT INBOX\r\n"
        "a3 FETCH 1 (BODY.PEEK[])\r\n"
        "a4 LOGOUT\r\n"
    ).encode()
    _s_client(imap.port, "imap", option, keys, pcap, commands)
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    info = s["tls_info"]
    assert s["protocol"] == "imap" and info["mode"] == "starttls", info
    assert (info["decrypted"], info["version"]) == (True, version), info
    assert [(a["mechanism"], a["username"], a["success"]) for a in s["auth"]] == [
        ("LOGIN", imap.user, True)
    ]
    [fetched] = s["messages"]
    assert fetched["partial"] is False
    assert fetched["message"]["subject"] == _subject(IMAP_MESSAGES[0])
    assert "cleartext-credentials" not in {f["kind"] for f in s["findings"]}
    theirs = _tshark_plain(pcap, keys, imap.port, f"tcp.port=={imap.port},imap")
    assert _decrypted_lines(s)[C] == _lines(theirs[C])


@pytest.mark.parametrize(("option", "version"), VERSIONS)
def test_s_client_starttls_pop3_reads_inside_tls(
    pop3: Pop3Server, tmp_path: Path, option: str, version: str
) -> None:
    pcap, keys = tmp_path / "pop3.pcap", tmp_path / "pop3.keys"
    commands = f"USER {pop3.user}\r\nPASS {pop3.password}\r\nRETR 1\r\nQUIT\r\n".encode()
    _s_client(pop3.port, "pop3", option, keys, pcap, commands)
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    info = s["tls_info"]
    assert s["protocol"] == "pop3" and info["mode"] == "starttls", info
    assert (info["decrypted"], info["version"]) == (True, version), info
    assert [(a["username"], a["password"], a["success"]) for a in s["auth"]] == [
        (pop3.user, pop3.password, True)
    ]
    [retrieved] = s["messages"]
    assert retrieved["message"]["subject"] == _subject(POP3_MESSAGES[0])
    assert "cleartext-credentials" not in {f["kind"] for f in s["findings"]}
    theirs = _tshark_plain(pcap, keys, pop3.port, f"tcp.port=={pop3.port},pop")
    assert _decrypted_lines(s)[C] == _lines(theirs[C])
