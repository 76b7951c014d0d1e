"""`send`/`pop` over STARTTLS/STLS say what crossed the wire encrypted; `send --json`, `mx --json`,
and a partial DNS failure; real aiosmtpd, dovecot and dnsmasq on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from jsonschema import Draft202012Validator

from mailsniff.status import ExitStatus
from tests.cli_runner import REPO, run_cli
from tests.jsonschema_check import validate_lines
from tests.servers import (
    DNS_DOMAIN,
    DNS_NO_MX,
    DNS_NULL_MX,
    REJECTED_RCPT,
    SMTP_PASSWORD,
    SMTP_USER,
    DnsServer,
    Pop3Server,
    SmtpServer,
    free_port,
    running_smtp,
)


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpServer]:
    with running_smtp() as smtp:
        yield smtp


@cache
def _send_schema() -> Draft202012Validator:
    schema = json.loads((REPO / "docs" / "send.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _records(stdout: str) -> list[dict[str, Any]]:
    """Each line: a session record checked against jsonl.schema.json, else send.schema.json."""
    records = []
    for line in stdout.splitlines():
        record = json.loads(line)
        if record["type"] == "session":
            validate_lines(line)
        else:
            errors = sorted(_send_schema().iter_errors(record), key=str)
            assert not errors, f"{record['type']} record invalid: {errors[0]}"
        records.append(record)
    return records


def _send(server: SmtpServer, *args: str) -> Any:
    return run_cli(
        "send", "--server", f"127.0.0.1:{server.port}", "--timeout", "10",
        "--from", SMTP_USER, "--to", "to@example.com", "--body", "hello",
        "--auth", "PLAIN", "--user", SMTP_USER, "--password", SMTP_PASSWORD,
        *args, timeout=120,
    )  # fmt: skip


def test_starttls_credentials_are_not_reported_as_cleartext(server: SmtpServer) -> None:
    proc = _send(server, "--starttls")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "C: STARTTLS" in out and "C: AUTH PLAIN" in out
    assert "cleartext-credentials" not in out
    assert "encrypted: not parsed" not in out
    assert "encrypted on the wire, shown decrypted (own connection)" in out
    assert "0 packets" not in out


def test_credentials_without_tls_still_are_cleartext(server: SmtpServer) -> None:
    proc = _send(server)
    assert proc.returncode == 0, proc.stderr
    assert "cleartext-credentials" in proc.stdout
    assert "0 packets" not in proc.stdout
    assert "traffic       client " in proc.stdout


def test_pop_stls_login_is_not_cleartext_and_the_message_is_shown(
    pop3_server: Pop3Server,
) -> None:
    proc = run_cli(
        "pop", "retr", "1", "--stls", "--server", f"{pop3_server.host}:{pop3_server.port}",
        "--user", pop3_server.user, "--password", pop3_server.password, "--timeout", "15",
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("C: STLS") < out.index("C: USER")
    assert "first message" in out  # the retrieved message, decoded
    assert "cleartext-credentials" not in out
    assert "encrypted: not parsed" not in out
    assert "encrypted on the wire, shown decrypted (own connection)" in out


def test_dry_run_prints_the_message_with_real_line_breaks() -> None:
    proc = run_cli(
        "send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@example.com",
        "--to", "b@example.com", "--subject", "plan", "--body", "line one\nline two\n",
        "--dry-run",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    message = proc.stdout[proc.stdout.index("message (dry run") :].splitlines()
    assert "Subject: plan" in message
    assert "line one" in message and "line two" in message
    assert "\\n" not in proc.stdout and "\\r" not in proc.stdout


def test_send_json_is_session_records_then_the_outcome(server: SmtpServer) -> None:
    proc = _send(
        server, "--starttls", "--to", REJECTED_RCPT, "--bcc", "hidden@example.com", "--json"
    )
    assert proc.returncode == ExitStatus.REJECTED, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "mailsniff: error: 1 of 3 recipients not accepted"
    )
    session, outcome = _records(proc.stdout)
    assert session["type"] == "session" and session["tls"] is True
    assert "C: STARTTLS" not in proc.stdout  # no console transcript mixed in
    assert [line["text"] for line in session["transcript"]][:2] == [
        session["banner"],
        "EHLO localhost",
    ]
    assert not [f for f in session["findings"] if f["kind"] == "cleartext-credentials"]
    assert outcome["type"] == "send" and outcome["exit_status"] == ExitStatus.REJECTED
    assert outcome["error"] == "1 of 3 recipients not accepted"
    rows = {r["address"]: (r["as"], r["status"]) for r in outcome["recipients"]}
    assert rows == {
        "to@example.com": ("to", "accepted"),
        REJECTED_RCPT: ("to", "rejected"),
        "hidden@example.com": ("bcc", "accepted"),
    }


def test_send_json_dry_run_carries_the_message() -> None:
    proc = run_cli(
        "send", "--server", f"127.0.0.1:{free_port()}", "--from", "a@example.com",
        "--to", "b@example.com", "--body", "hi", "--dry-run", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [record] = _records(proc.stdout)
    assert record["dry_run"] is True and record["exit_status"] == 0
    assert record["message_text"].endswith("\r\nhi\r\n")
    assert record["message"]["size"] == len(record["message_text"].encode())


@pytest.mark.parametrize(
    ("domain", "implicit", "null_mx"),
    [(DNS_DOMAIN, False, False), (DNS_NO_MX, True, False), (DNS_NULL_MX, False, True)],
)
def test_mx_json_record(dns_server: DnsServer, domain: str, implicit: bool, null_mx: bool) -> None:
    proc = run_cli("mx", domain, "--resolver", dns_server.address, "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    [record] = _records(proc.stdout)
    assert (record["domain"], record["implicit"], record["null_mx"]) == (domain, implicit, null_mx)
    if domain == DNS_DOMAIN:
        assert [(h["preference"], h["addresses"]) for h in record["hosts"]] == [
            (10, ["127.0.0.2"]),
            (20, ["127.0.0.1", "::1"]),
        ]


@pytest.fixture
def refusing_aaaa(dns_server: DnsServer) -> Iterator[str]:
    """A DNS front on loopback: AAAA queries are REFUSED, the rest is dnsmasq's answer."""
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    front.bind(("127.0.0.1", 0))
    front.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(5)
            while not stop.is_set():
                try:
                    data, client = front.recvfrom(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                query = dns.message.from_wire(data)
                if query.question[0].rdtype == dns.rdatatype.AAAA:
                    refusal = dns.message.make_response(query)
                    refusal.set_rcode(dns.rcode.REFUSED)
                    front.sendto(refusal.to_wire(), client)
                    continue
                upstream.sendto(data, (dns_server.host, dns_server.port))
                try:
                    front.sendto(upstream.recv(4096), client)
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{front.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        front.close()


def test_mx_with_aaaa_refused_lists_the_a_records_and_warns(refusing_aaaa: str) -> None:
    proc = run_cli("mx", DNS_DOMAIN, "--resolver", refusing_aaaa, "--timeout", "3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "127.0.0.2" in proc.stdout and "127.0.0.1" in proc.stdout
    assert "::1" not in proc.stdout
    warnings = proc.stderr.strip().splitlines()
    assert warnings == [
        f"mailsniff: warning: mx1.{DNS_DOMAIN} AAAA: no DNS server answered (SERVFAIL or REFUSED)",
        f"mailsniff: warning: mx2.{DNS_DOMAIN} AAAA: no DNS server answered (SERVFAIL or REFUSED)",
    ]
    json_proc = run_cli("mx", DNS_DOMAIN, "--resolver", refusing_aaaa, "--json", timeout=60)
    assert json_proc.returncode == 0, json_proc.stderr
    [record] = _records(json_proc.stdout)
    assert [h["addresses"] for h in record["hosts"]] == [["127.0.0.2"], ["127.0.0.1"]]
    assert all(len(h["warnings"]) == 1 for h in record["hosts"])
