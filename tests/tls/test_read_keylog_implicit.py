"""`read --keylog` on implicit TLS (SMTPS 465, POP3S 995), and agreement with tshark on what the
read path shows as decrypted.

The captures are real: `mailsniff send --tls` / `pop --tls --capture --keylog` against aiosmtpd
and dovecot on loopback. The test servers listen on free ports, so the server port is renumbered
to 465/995 in the capture (the bytes are untouched): implicit TLS is recognised by its port.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap, wrpcap

from mailsniff.protocols.base import Direction
from tests.cli_runner import read_json, run_cli
from tests.servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Pop3Server,
    SmtpServer,
    pop3_server,
    running_smtp,
)

__all__ = ["pop3_server"]  # the dovecot fixture

C, S = Direction.CLIENT, Direction.SERVER


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with running_smtp() as server:
        yield server


def _renumber(pcap: Path, port: int, to: int) -> Path:
    """The same packets with the server port `port` written as `to` (checksums recomputed)."""
    packets = rdpcap(str(pcap))
    for p in packets:
        if TCP in p:
            if p[TCP].sport == port:
                p[TCP].sport = to
            if p[TCP].dport == port:
                p[TCP].dport = to
            del p[TCP].chksum
    out = pcap.with_name(pcap.stem + f"-{to}.pcap")
    wrpcap(str(out), packets)
    return out


def _run(*args: str) -> None:
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == 0, proc.stderr


def _tshark_plain(
    pcap: Path, keys: Path, server_port: int, decode_as: str | None = None
) -> dict[Direction, bytes]:
    """What `tshark -z follow,tls,raw,0` decrypts per direction. Node 0 is the side that sent
    the first application data (its lines flush left, the other side's indented)."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by scripts/test.sh"
    argv = [tshark, "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-q",
            "-z", "follow,tls,raw,0"]  # fmt: skip
    if decode_as:
        argv[2:2] = ["-d", decode_as]
    out = subprocess.run(argv, capture_output=True, check=True, timeout=120).stdout.decode()
    node0 = out.split("Node 0:", 1)[1].split("\n", 1)[0].strip()
    first = S if node0.endswith(f":{server_port}") else C
    plain = {C: bytearray(), S: bytearray()}
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    for line in body.splitlines():
        if not line.strip() or line.startswith("="):
            continue
        d = first.other if line.startswith("\t") else first
        plain[d] += bytes.fromhex(line.strip())
    return {d: bytes(v) for d, v in plain.items()}


def _decrypted_lines(session: dict[str, Any]) -> dict[Direction, list[str]]:
    """The transcript lines the read path marks decrypted, per direction (gap notes aside)."""
    out: dict[Direction, list[str]] = {C: [], S: []}
    for line in session["transcript"]:
        if line["decrypted"] and line["text"]:
            out[Direction(line["direction"])].append(line["text"])
    return out


def _lines(data: bytes) -> list[str]:
    return [x.decode("utf-8", "replace") for x in data.split(b"\r\n") if x]


def test_smtps_reads_from_the_first_byte_and_agrees_with_tshark(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    raw, keys = tmp_path / "smtps.pcap", tmp_path / "smtps.keys"
    _run(
        "send", "--timeout", "10", "--server", f"127.0.0.1:{smtp.tls_port}", "--tls",
        "--from", "boss@example.com", "--to", "to@example.com", "--bcc", "secret@example.com",
        "--subject", "over smtps", "--body", "implicit TLS body",
        "--auth", "LOGIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
        "--capture", str(raw), "--keylog", str(keys),
    )  # fmt: skip
    pcap = _renumber(raw, smtp.tls_port, 465)
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    assert s["tls_info"]["mode"] == "implicit" and s["tls_info"]["decrypted"] is True
    assert s["banner"] is not None and "mailsniff-test ESMTP" in s["banner"]
    [txn] = s["transactions"]
    assert txn["bcc"] == ["secret@example.com"]
    assert txn["message"]["subject"] == "over smtps"
    assert [(a["mechanism"], a["username"], a["success"]) for a in s["auth"]] == [
        ("LOGIN", SMTP_USER, True)
    ]
    theirs = _tshark_plain(pcap, keys, 465)
    assert theirs[C] and theirs[S]
    ours = _decrypted_lines(s)
    assert ours[S] == _lines(theirs[S])
    # The client's message lines are content, shown once the message is parsed; the command
    # lines before DATA are the same.
    assert ours[C][:4] == _lines(theirs[C])[:4]


def test_starttls_agrees_with_tshark(smtp: SmtpServer, tmp_path: Path) -> None:
    pcap, keys = tmp_path / "st.pcap", tmp_path / "st.keys"
    _run(
        "send", "--timeout", "10", "--server", f"127.0.0.1:{smtp.port}", "--starttls",
        "--from", "boss@example.com", "--to", "to@example.com", "--body", "x",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
        "--capture", str(pcap), "--keylog", str(keys),
    )  # fmt: skip
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    theirs = _tshark_plain(pcap, keys, smtp.port, f"tcp.port=={smtp.port},smtp")
    ours = _decrypted_lines(s)
    assert ours[S] == _lines(theirs[S])
    assert ours[C][:3] == _lines(theirs[C])[:3]  # EHLO, AUTH PLAIN, MAIL FROM


def test_pop3s_reads_from_the_first_byte_and_agrees_with_tshark(
    pop3_server: Pop3Server, tmp_path: Path
) -> None:
    raw, keys = tmp_path / "pop3s.pcap", tmp_path / "pop3s.keys"
    _run(
        "pop", "retr", "1", "--server", f"{pop3_server.host}:{pop3_server.tls_port}", "--tls",
        "--user", pop3_server.user, "--password", pop3_server.password, "--timeout", "10",
        "--capture", str(raw), "--keylog", str(keys),
    )  # fmt: skip
    pcap = _renumber(raw, pop3_server.tls_port, 995)
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    assert s["tls_info"]["mode"] == "implicit" and s["tls_info"]["decrypted"] is True
    assert s["banner"] is not None and s["banner"].startswith("+OK")
    assert [m["command"] for m in s["messages"]] == ["RETR 1"]
    assert s["auth"] and s["auth"][0]["username"] == pop3_server.user
    theirs = _tshark_plain(pcap, keys, 995)
    ours = _decrypted_lines(s)
    assert ours[C] == _lines(theirs[C])  # every command, in clear inside TLS
    assert _lines(theirs[S])[0] == ours[S][0]  # the greeting
    assert b"".join(theirs[S].split(b"\r\n")).startswith(b"+OK")
    # Without keys: described, not decrypted, nothing made up.
    [blind] = read_json(pcap)
    assert blind["tls_info"]["decrypted"] is False and blind["messages"] == []
