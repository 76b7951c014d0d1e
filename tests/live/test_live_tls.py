"""`mailsniff live --keylog`: a STARTTLS session sniffed on `lo` is decrypted with key log lines
the client writes while the capture runs (smtplib with `keylog_filename`, aiosmtpd)."""

from __future__ import annotations

import signal
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.test_live import MESSAGE, RECIPIENTS, _is_session, _records, live
from tests.servers import SMTP_PASSWORD, SMTP_USER, SmtpServer, running_smtp


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp() as server:
        yield server


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_live_decrypts_starttls_with_keys_logged_during_the_capture(
    smtp: SmtpServer, tmp_path: Path, jobs: str
) -> None:
    keys = tmp_path / "client.keys"  # does not exist yet: the client creates it
    pcap = tmp_path / "live.pcap"
    args = ("--json", "--duration", "300", "--ports", str(smtp.port), "-w", str(pcap))
    with live(*args, "--jobs", jobs, "--keylog", str(keys)) as lp:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.keylog_filename = str(keys)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=30) as client:
            client.ehlo("client.example.com")
            client.starttls(context=context)
            client.ehlo("client.example.com")
            client.login(SMTP_USER, SMTP_PASSWORD)
            client.sendmail("alice@example.com", RECIPIENTS, MESSAGE)
        lp.next_stdout(_is_session)
        with keys.open("a") as log:  # a line no key log should hold: said once, at the end
            log.write("CLIENT_RANDOM not-hex\n")
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    warning = f"key log {keys}: 1 malformed line(s) skipped"
    assert stderr.count(warning) == 1, stderr
    [summary] = [r for r in _records(lines) if r["type"] == "summary"]
    assert any(w.startswith(warning) for w in summary["warnings"]), summary
    [s] = [r for r in _records(lines) if r["type"] == "session"]
    assert s["tls"] is True
    assert s["tls_info"]["decrypted"] is True, s["tls_info"]
    assert [a["username"] for a in s["auth"]] == [SMTP_USER]
    [tx] = s["transactions"]
    assert tx["rcpt_to"] == RECIPIENTS
    assert "hidden@example.com" in tx["bcc"]
    assert keys.read_text().count("CLIENT_TRAFFIC_SECRET_0") == 1
