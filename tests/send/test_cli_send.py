"""`mailsniff send` end to end: real aiosmtpd, real dnsmasq, and the packets it captured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsniff.status import ExitStatus
from tests.cli_runner import REPO, read_json, run_cli
from tests.servers import (
    DNS_DOMAIN,
    DNS_NO_MX,
    DNS_NULL_MX,
    DNS_NXDOMAIN,
    REJECTED_RCPT,
    SEED_553,
    SMTP_PASSWORD,
    SMTP_USER,
    UNAUTHORIZED_SENDER,
    DnsServer,
    SmtpServer,
    free_port,
    running_smtp,
)


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpServer]:
    with running_smtp() as smtp:
        yield smtp


def _send(*args: str) -> Any:
    return run_cli("send", "--timeout", "10", *args, timeout=120)


def _addresses(entries: list[dict[str, str]]) -> list[str]:
    return [e["address"] for e in entries]


def test_bcc_is_proved_from_the_capture_envelope_only(server: SmtpServer, tmp_path: Path) -> None:
    pcap = tmp_path / "bcc.pcap"
    proc = _send(
        "--server", f"127.0.0.1:{server.port}",
        "--from", "boss@example.com",
        "--header-from", "CEO <ceo@example.org>",
        "--to", "to@example.com",
        "--cc", "cc1@example.com,cc2@example.com",
        "--bcc", "secret@example.com",
        "--subject", "会议通知",
        "--charset", "gbk",
        "--auth", "LOGIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
        "--capture", str(pcap),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [session] = read_json(pcap)
    [txn] = session["transactions"]
    assert txn["mail_from"] == "boss@example.com"
    assert txn["rcpt_to"] == [
        "to@example.com",
        "cc1@example.com",
        "cc2@example.com",
        "secret@example.com",
    ]
    assert txn["bcc"] == ["secret@example.com"]
    message = txn["message"]
    assert _addresses(message["to"]) == ["to@example.com"]
    assert _addresses(message["cc"]) == ["cc1@example.com", "cc2@example.com"]
    assert message["bcc"] == []
    assert [(a["name"], a["address"]) for a in message["from"]] == [("CEO", "ceo@example.org")]
    assert message["subject"] == "会议通知"
    assert all("secret@example.com" not in value for _, value in message["headers"])
    assert [a["username"] for a in session["auth"]] == [SMTP_USER]
    # and what the server stored has no trace of the Bcc either
    assert b"secret@example.com" not in server.received[-1].content
    assert server.received[-1].rcpt_tos[-1] == "secret@example.com"


def test_the_run_shows_the_transcript_and_a_per_recipient_table(server: SmtpServer) -> None:
    proc = _send(
        "--server", f"127.0.0.1:{server.port}",
        "--from", "boss@example.com",
        "--to", f"to@example.com,{REJECTED_RCPT}",
        "--bcc", "hidden@example.com",
        "--body", "hello",
    )  # fmt: skip
    assert proc.returncode == ExitStatus.REJECTED
    out = proc.stdout
    assert "C: MAIL FROM:<boss@example.com>" in out
    assert "S: 550 5.1.1 No such user here" in out
    table = out[out.index("Recipients") :]
    assert "hidden@example.com" in table and "bcc" in table
    assert "rejected" in table and "accepted" in table
    assert proc.stderr.strip().splitlines() == ["mailsniff: error: 1 of 3 recipients not accepted"]


def test_the_seed_553_sender_is_one_line_and_the_rejected_status(server: SmtpServer) -> None:
    proc = _send(
        "--server", f"127.0.0.1:{server.port}", "--from", UNAUTHORIZED_SENDER, "--to", "a@b.example"
    )  # fmt: skip
    assert proc.returncode == ExitStatus.REJECTED
    [line] = proc.stderr.strip().splitlines()
    assert line == f"mailsniff: error: sender <{UNAUTHORIZED_SENDER}> rejected: {SEED_553}"
    assert "S: 553 You are not authorized" in proc.stdout


def test_wrong_password_is_one_line_and_the_rejected_status(server: SmtpServer) -> None:
    proc = _send(
        "--server", f"127.0.0.1:{server.port}", "--from", "a@b.example", "--to", "c@d.example",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", "nope",
    )  # fmt: skip
    assert proc.returncode == ExitStatus.REJECTED
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("mailsniff: error: authentication failed: 535")
    assert "S: 535" in proc.stdout


def _run_no_tty(*args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI with stdin from /dev/null (never a terminal, so it cannot prompt)."""
    return subprocess.run(
        [sys.executable, "-m", "mailsniff", "send", "--timeout", "10", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_the_password_can_come_from_the_environment(server: SmtpServer) -> None:
    proc = _run_no_tty(
        "--server", f"127.0.0.1:{server.port}", "--from", "a@b.example", "--to", "c@d.example",
        "--auth", "CRAM-MD5", "--user", SMTP_USER,
        env={"MAILSNIFF_PASSWORD": SMTP_PASSWORD},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_no_password_and_no_terminal_is_a_usage_error(server: SmtpServer) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MAILSNIFF_PASSWORD"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "mailsniff", "send", "--server", f"127.0.0.1:{server.port}",
            "--from", "a@b.example", "--to", "c@d.example", "--auth", "LOGIN", "--user", SMTP_USER,
        ],
        capture_output=True, text=True, cwd=REPO, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == ExitStatus.USAGE
    assert "a password is needed" in proc.stderr


def test_connection_refused_is_one_line_and_the_network_status() -> None:
    port = free_port()
    proc = _send("--server", f"127.0.0.1:{port}", "--from", "a@b.example", "--to", "c@d.example")
    assert proc.returncode == ExitStatus.NETWORK
    assert proc.stderr.strip().splitlines() == [
        f"mailsniff: error: 127.0.0.1:{port}: Connection refused"
    ]


def test_dry_run_prints_envelope_and_message_without_connecting(tmp_path: Path) -> None:
    attachment = tmp_path / "notes.txt"
    attachment.write_text("attached\n")
    proc = _send(
        "--server", f"127.0.0.1:{free_port()}",  # nothing listens: a connection would fail
        "--from", "boss@example.com", "--to", "to@example.com", "--bcc", "hidden@example.com",
        "--subject", "plan", "--header", "X-Campaign: q3", "--attach", str(attachment),
        "--dry-run",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "RCPT TO    <hidden@example.com>  (bcc)" in out
    message = out[out.index("message (dry run") :]
    assert "X-Campaign: q3" in message and 'filename="notes.txt"' in message
    assert "hidden@example.com" not in message


def test_no_recipient_is_a_usage_error() -> None:
    proc = _send("--from", "a@b.example", "--dry-run")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.strip() == "mailsniff: error: no recipients: give --to, --cc or --bcc"


# --------------------------------------------------------------------------- MX routing


def test_mx_routed_send_falls_back_to_the_next_mx_and_is_captured(
    server: SmtpServer, dns_server: DnsServer, tmp_path: Path
) -> None:
    pcap = tmp_path / "mx.pcap"
    proc = _send(
        "--resolver", dns_server.address, "--port", str(server.port),
        "--from", "boss@example.com",
        "--to", f"a@{DNS_DOMAIN}", "--bcc", f"b@{DNS_DOMAIN}",
        "--capture", str(pcap),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # MX 10 (127.0.0.2) refuses; MX 20 (127.0.0.1) takes the mail
    assert f"MX 10 mx1.{DNS_DOMAIN} (127.0.0.2)" in out
    assert "Connection refused: trying the next address" in out
    assert f"MX 20 mx2.{DNS_DOMAIN} (127.0.0.1)" in out
    assert server.received[-1].rcpt_tos == [f"a@{DNS_DOMAIN}", f"b@{DNS_DOMAIN}"]
    [session] = read_json(pcap)
    assert session["transactions"][0]["bcc"] == [f"b@{DNS_DOMAIN}"]


def test_a_domain_without_mx_gets_its_mail_at_its_own_address(
    server: SmtpServer, dns_server: DnsServer
) -> None:
    proc = _send(
        "--resolver", dns_server.address, "--port", str(server.port),
        "--from", "boss@example.com", "--to", f"x@{DNS_NO_MX}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert server.received[-1].rcpt_tos == [f"x@{DNS_NO_MX}"]


def test_recipients_in_a_missing_domain_fail_with_the_dns_error(
    server: SmtpServer, dns_server: DnsServer
) -> None:
    proc = _send(
        "--resolver", dns_server.address, "--port", str(server.port),
        "--from", "boss@example.com", "--to", f"ok@{DNS_DOMAIN},lost@{DNS_NXDOMAIN}",
    )  # fmt: skip
    assert proc.returncode == ExitStatus.NETWORK
    assert proc.stderr.strip().splitlines() == [
        f"mailsniff: error: {DNS_NXDOMAIN}: no such domain (NXDOMAIN)"
    ]
    assert server.received[-1].rcpt_tos == [f"ok@{DNS_DOMAIN}"]  # the other domain got it


def test_a_null_mx_domain_is_refused_without_connecting(dns_server: DnsServer) -> None:
    proc = _send(
        "--resolver", dns_server.address, "--port", str(free_port()),
        "--from", "boss@example.com", "--to", f"x@{DNS_NULL_MX}",
    )  # fmt: skip
    assert proc.returncode == ExitStatus.REJECTED
    assert "null MX" in proc.stderr


def test_read_json_of_a_capture_lists_one_session(server: SmtpServer, tmp_path: Path) -> None:
    pcap = tmp_path / "one.pcap"
    proc = _send(
        "--server", f"127.0.0.1:{server.port}", "--from", "a@b.example", "--to", "c@d.example",
        "--capture", str(pcap),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    read = run_cli("read", str(pcap), "--json")
    records = [json.loads(line) for line in read.stdout.splitlines()]
    assert [r["type"] for r in records] == ["session", "summary"]
    assert records[0]["complete"] is True


def test_starttls_then_auth_shows_the_decrypted_dialogue(server: SmtpServer) -> None:
    proc = _send(
        "--server", f"127.0.0.1:{server.port}", "--starttls",
        "--from", "a@b.example", "--to", "c@d.example",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "TLS started: shown decrypted" in out
    assert out.index("C: STARTTLS") < out.index("C: AUTH PLAIN")


def test_implicit_tls_send(server: SmtpServer) -> None:
    proc = _send(
        "--server", f"127.0.0.1:{server.tls_port}", "--tls",
        "--from", "a@b.example", "--to", "c@d.example",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert server.received[-1].rcpt_tos == ["c@d.example"]


def test_tls_and_starttls_together_are_a_usage_error() -> None:
    proc = _send("--server", "127.0.0.1", "--tls", "--starttls", "--from", "a@b", "--to", "c@d")
    assert proc.returncode == ExitStatus.USAGE


def test_redact_masks_the_password_and_its_base64_everywhere(server: SmtpServer) -> None:
    import base64

    args = (
        "--server", f"127.0.0.1:{server.port}",
        "--from", SMTP_USER, "--to", "to@example.com", "--body", "hello",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
    )  # fmt: skip
    plain_blob = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    shown = _send(*args)
    assert shown.returncode == 0, shown.stderr
    assert plain_blob in shown.stdout  # without --redact the AUTH line is shown as sent
    redacted = _send(*args, "--redact")
    assert redacted.returncode == 0, redacted.stderr
    for secret in (SMTP_PASSWORD, plain_blob, base64.b64encode(SMTP_PASSWORD.encode()).decode()):
        assert secret not in redacted.stdout + redacted.stderr
    assert "********" in redacted.stdout
