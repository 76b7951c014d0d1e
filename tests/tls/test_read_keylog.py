"""`read --keylog`: STARTTLS and implicit-TLS captures made by real software on loopback read like
the cleartext capture of the same dialogue; without the keys, or with the wrong ones, each
session says why it was not decrypted.

The captures come from `mailsniff send --capture --keylog` (Python's ssl module writing the key
log) against aiosmtpd, which sniffs `lo` for its own connection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import read_json, run_cli
from tests.servers import SMTP_PASSWORD, SMTP_USER, SmtpServer, running_smtp


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpServer]:
    with running_smtp() as smtp:
        yield smtp


def _send(server: str, pcap: Path, *extra: str) -> None:
    proc = run_cli(
        "send", "--timeout", "10", "--server", server,
        "--from", "boss@example.com", "--header-from", "CEO <ceo@example.org>",
        "--to", "to@example.com", "--bcc", "secret@example.com",
        "--subject", "quarterly figures", "--body", "inside TLS, read with the key log",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
        "--capture", str(pcap), *extra, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def captures(server: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tlsread")
    out = {"clear": d / "clear.pcap", "starttls": d / "starttls.pcap", "keys": d / "st.keys"}
    _send(f"127.0.0.1:{server.port}", out["clear"])
    _send(f"127.0.0.1:{server.port}", out["starttls"], "--starttls", "--keylog", str(out["keys"]))
    return out


def _first_session(stdout: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(stdout.splitlines()[0])
    assert record["type"] == "session"
    return record


def _dialogue(session: dict[str, Any]) -> dict[str, Any]:
    """What the analyst reads from a session: auth, envelope, message, Bcc."""
    [txn] = session["transactions"]
    message = txn["message"]
    return {
        "auth": [
            (a["mechanism"], a["username"], a["password"], a["success"]) for a in session["auth"]
        ],
        "mail_from": txn["mail_from"],
        "rcpt_to": txn["rcpt_to"],
        "bcc": txn["bcc"],
        "data_reply": txn["data_reply"],
        "subject": message["subject"],
        "from": message["from"],
        "to": message["to"],
        "size_known": message["size"] > 0,
        "truncated": message["truncated"],
        "gap_bytes": message["gap_bytes"],
    }


def test_starttls_capture_with_its_key_log_reads_like_the_cleartext_one(
    captures: dict[str, Path],
) -> None:
    [clear] = read_json(captures["clear"])
    [tls] = read_json(captures["starttls"], "--keylog", str(captures["keys"]))
    assert _dialogue(tls) == _dialogue(clear)
    assert tls["tls"] is True and clear["tls"] is False
    assert clear["tls_info"] is None
    info = tls["tls_info"]
    assert info["mode"] == "starttls"
    assert info["decrypted"] is True and info["reason"] is None
    assert info["version"] == "TLS 1.3" and info["cipher_suite"].startswith("TLS_")
    assert info["records_decrypted"] > 0 and info["problems"] == [] and info["failures"] == []
    # The server's second EHLO reply (inside TLS) no longer offers STARTTLS: it was parsed.
    assert not any("cleartext-after-starttls" in a for a in tls["anomalies"])
    # Credentials sent inside TLS were not readable on the wire: no cleartext finding for them.
    kinds = {f["kind"] for f in tls["findings"]}
    assert "cleartext-credentials" in {f["kind"] for f in clear["findings"]}
    assert "cleartext-credentials" not in kinds and "bcc" in kinds


def test_without_the_key_log_the_session_says_why_nothing_was_decrypted(
    captures: dict[str, Path],
) -> None:
    [tls] = read_json(captures["starttls"])
    assert tls["transactions"] == [] and tls["auth"] == []
    info = tls["tls_info"]
    assert info["decrypted"] is False
    assert info["reason"].startswith("no key log given")
    assert info["version"] == "TLS 1.3"  # the handshake is described all the same


def test_the_environment_variable_is_the_default_key_log(captures: dict[str, Path]) -> None:
    import subprocess
    import sys

    from tests.paths import REPO

    env = {**os.environ, "SSLKEYLOGFILE": str(captures["keys"])}
    proc = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", str(captures["starttls"]), "--json"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _first_session(proc.stdout)["tls_info"]["decrypted"] is True
    assert "SSLKEYLOGFILE" in run_cli("read", "--help").stdout


def test_wrong_and_garbage_keys_give_reasons_not_tracebacks(
    captures: dict[str, Path], tmp_path: Path
) -> None:
    real = captures["keys"].read_text()
    # Keys of another session: every client random replaced.
    other = tmp_path / "other.keys"
    lines = []
    for line in real.splitlines():
        parts = line.split()
        if len(parts) == 3:
            parts[1] = "ab" * 32
        lines.append(" ".join(parts))
    other.write_text("\n".join(lines) + "\n")
    [s] = read_json(captures["starttls"], "--keylog", str(other))
    assert s["tls_info"]["decrypted"] is False
    assert "no key for client random" in s["tls_info"]["reason"]
    # Right client random, wrong secrets: records fail authentication, reported with position.
    wrong = tmp_path / "wrong.keys"
    lines = []
    for line in real.splitlines():
        parts = line.split()
        if len(parts) == 3:
            parts[2] = "00" * (len(parts[2]) // 2)
        lines.append(" ".join(parts))
    wrong.write_text("\n".join(lines) + "\n")
    [s] = read_json(captures["starttls"], "--keylog", str(wrong))
    info = s["tls_info"]
    assert info["decrypted"] is False and info["failures"]
    assert all(f["offset"] >= 0 for f in info["failures"])
    assert "failed authentication" in info["reason"]
    assert s["transactions"] == []  # nothing made up
    # Garbage lines around the real ones: a warning, and the real keys still work.
    garbage = tmp_path / "garbage.keys"
    garbage.write_bytes(b"\x00\xff junk\nCLIENT_RANDOM zz 11\n" + real.encode() + b"A" * 5000)
    proc = run_cli("read", str(captures["starttls"]), "--json", "--keylog", str(garbage))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "malformed line" in proc.stderr
    assert _first_session(proc.stdout)["tls_info"]["decrypted"] is True


def test_a_missing_key_log_is_one_line_and_an_input_error(captures: dict[str, Path]) -> None:
    proc = run_cli("read", str(captures["starttls"]), "--keylog", "/nonexistent/keys")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "--keylog /nonexistent/keys: no such file" in proc.stderr


def test_transcript_marks_decrypted_lines_and_creds_sees_the_password(
    captures: dict[str, Path],
) -> None:
    keys = str(captures["keys"])
    proc = run_cli("read", str(captures["starttls"]), "--transcript", "--keylog", keys)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "C: STARTTLS" in out  # sent in clear
    assert "C* EHLO" in out and "C* MAIL FROM:<boss@example.com>" in out  # decrypted
    assert "S* 250" in out
    assert "TLS started: TLS 1.3" in out
    creds = run_cli("creds", str(captures["starttls"]), "--json", "--keylog", keys)
    assert creds.returncode == 0, creds.stderr
    assert SMTP_PASSWORD in creds.stdout
    redacted = run_cli("read", str(captures["starttls"]), "--json", "--redact", "--keylog", keys)
    assert redacted.returncode == 0 and SMTP_PASSWORD not in redacted.stdout


def test_extract_writes_the_message_read_inside_tls(
    captures: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "evidence"
    mbox = tmp_path / "mail.mbox"
    proc = run_cli(
        "read", str(captures["starttls"]), "--json", "--keylog", str(captures["keys"]),
        "--extract", str(out), "--mbox", str(mbox),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [eml] = list(out.glob("*.eml"))
    assert b"inside TLS, read with the key log" in eml.read_bytes()
    assert b"quarterly figures" in mbox.read_bytes()
