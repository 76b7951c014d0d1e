"""`mailsniff live` end to end: real servers and clients on loopback, captured as root on lo."""

from __future__ import annotations

import base64
import json
import os
import poplib
import queue
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mailsniff.commands.live import DEFAULT_PORTS, build_filter
from mailsniff.errors import UsageError
from mailsniff.model import AuthAttempt, Endpoint, Protocol, RcptAttempt, Session, Transaction
from mailsniff.render.live_view import open_sessions_view
from tests.cli_runner import REPO, read_json, run_cli
from tests.jsonschema_check import validate_lines
from tests.servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Pop3Server,
    SmtpServer,
    free_port,
    pop3_server,  # noqa: F401
    running_smtp,
)

#: Longest wait for anything the test polls for (the live process, a record).
_DEADLINE = 30.0

MESSAGE = (
    "From: Alice <alice@example.com>\r\n"
    "To: Tom <to@example.com>\r\n"
    "Cc: carol@example.com\r\n"
    "Subject: quarterly numbers\r\n"
    "Message-ID: <live-1@example.com>\r\n"
    "\r\n"
    "See attached.\r\n"
)
RECIPIENTS = ["to@example.com", "carol@example.com", "hidden@example.com"]


@dataclass
class LiveProcess:
    """A running `mailsniff live`, its stdout and stderr read line by line on threads."""

    proc: subprocess.Popen[str]
    stdout: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr_lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    out_lines: list[str] = field(default_factory=list)

    def next_stdout(self, predicate: Any) -> str:
        """The next stdout line for which predicate(line) holds, waiting up to the deadline."""
        deadline = time.monotonic() + _DEADLINE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such output line; stderr: {self.stderr_lines}")
            try:
                line = self.stdout.get(timeout=left)
            except queue.Empty:
                continue
            self.out_lines.append(line)
            if predicate(line):
                return line

    def finish(self, sig: int | None = signal.SIGINT) -> tuple[int, list[str], str]:
        """Send sig (if any), wait for the exit; (status, every stdout line, stderr)."""
        if sig is not None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout=_DEADLINE)
        self._readers_done.wait(_DEADLINE)
        while not self.stdout.empty():
            self.out_lines.append(self.stdout.get_nowait())
        return status, self.out_lines, "".join(self.stderr_lines)

    _readers_done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def live(*args: str, wait_ready: bool = True) -> Iterator[LiveProcess]:
    """Start `mailsniff live -i lo ARGS`, wait for its ready line, stop it on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", "live", "-i", "lo", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lp = LiveProcess(proc)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout, proc.stderr

    def read_out() -> None:
        for line in out:
            lp.stdout.put(line)

    def read_err() -> None:
        for line in err:
            lp.stderr_lines.append(line)
            if "capturing on" in line:
                lp.ready.set()

    threads = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for t in threads:
        t.start()

    def joined() -> None:
        for t in threads:
            t.join()
        lp._readers_done.set()

    threading.Thread(target=joined, daemon=True).start()
    try:
        if wait_ready:
            deadline = time.monotonic() + _DEADLINE
            while not lp.ready.wait(0.05):
                assert proc.poll() is None, f"live exited early: {''.join(lp.stderr_lines)}"
                assert time.monotonic() < deadline, "live never said it was capturing"
        yield lp
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=_DEADLINE)


def _records(lines: list[str]) -> list[dict[str, Any]]:
    return validate_lines("".join(lines))


def _send_with_auth_login(server: SmtpServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=_DEADLINE) as client:
        client.ehlo("client.example.com")
        client.user, client.password = SMTP_USER, SMTP_PASSWORD
        client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        client.sendmail("alice@example.com", RECIPIENTS, MESSAGE)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp(tls=False) as server:
        yield server


def _is_session(line: str) -> bool:
    return json.loads(line)["type"] == "session"


# --------------------------------------------------------------------------- SMTP


def test_smtp_session_live_shows_credentials_envelope_headers_and_bcc_and_pcap_agrees(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    pcap = tmp_path / "live.pcap"
    with live("--json", "--duration", "300", "-w", str(pcap), "--ports", str(smtp.port)) as lp:
        _send_with_auth_login(smtp)
        lp.next_stdout(_is_session)
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    records = _records(lines)
    sessions = [r for r in records if r["type"] == "session"]
    assert len(sessions) == 1
    s = sessions[0]
    assert s["protocol"] == "smtp" and s["server"]["port"] == smtp.port
    assert s["complete"] and s["close_reason"] == "fin"
    assert s["auth"] == [
        {
            "mechanism": "LOGIN",
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
            "success": True,
            "reply": s["auth"][0]["reply"],
            "time": s["auth"][0]["time"],
            "authzid": None,
            "challenge": None,
            "response": None,
            "not_base64": False,
            "cancelled": False,
            "domain": None,
            "workstation": None,
            "hash_type": None,
        }
    ]
    assert s["auth"][0]["reply"].startswith("235")
    (t,) = s["transactions"]
    assert t["mail_from"] == "alice@example.com"
    assert t["rcpt_to"] == RECIPIENTS and t["rcpt_accepted"] == RECIPIENTS
    assert t["bcc"] == ["hidden@example.com"]
    m = t["message"]
    assert m["from"] == [{"name": "Alice", "address": "alice@example.com"}]
    assert m["to"] == [{"name": "Tom", "address": "to@example.com"}]
    assert m["cc"] == [{"name": "", "address": "carol@example.com"}]
    assert m["subject"] == "quarterly numbers"
    assert m["message_id"] == "<live-1@example.com>"
    kinds = {f["kind"] for f in s["findings"]}
    assert {"cleartext-credentials", "bcc"} <= kinds

    summary = records[-1]
    assert summary["type"] == "summary"
    assert summary["sessions"] == 1 and summary["credentials"] == 1
    assert summary["bcc_recipients"] == 1 and summary["messages"] == 1
    assert summary["live"]["stopped"] == "interrupted"
    assert summary["live"]["kernel_dropped"] == 0
    assert summary["live"]["mailsniff_dropped"] == 0
    assert "interrupted" in stderr and "1 Bcc recipients" in stderr

    # The pcap written while capturing gives exactly the same record offline.
    assert read_json(pcap) == sessions


def test_smtp_console_output_shows_the_session_and_a_summary_with_drop_counts(
    smtp: SmtpServer,
) -> None:
    with live("--ports", str(smtp.port), "--transcript", "--no-plain") as lp:
        _send_with_auth_login(smtp)
        lp.next_stdout(lambda line: "hidden@example.com" in line)
        status, lines, stderr = lp.finish(signal.SIGTERM)
    assert status == 0, stderr
    text = "".join(lines)
    # --transcript: the dialogue as it came, the AUTH LOGIN answers decoded beside them.
    assert "C: mail FROM:<alice@example.com>" in text
    assert f"[{SMTP_USER}]" in text and f"[{SMTP_PASSWORD}]" in text
    # Then the session in full, as `read` prints it.
    assert "Bcc (envelope only)" in text
    assert "quarterly numbers" in text
    assert "dropped by kernel" in text and "dropped by mailsniff" in text
    assert "analysis behind by" in text
    assert "terminated" in stderr


PLAIN_RECORDS = {"session", "auth", "mail", "rcpt", "message", "finding", "line", "summary", "live"}


def test_plain_by_default_into_a_pipe_one_record_per_line_as_each_session_ends(
    smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILSNIFF_PLAIN", raising=False)
    with live("--ports", str(smtp.port), "--transcript") as lp:  # stdout: a pipe
        _send_with_auth_login(smtp)
        # the session's records come when it ends, while the capture goes on
        first = lp.next_stdout(lambda line: line.startswith("session\t"))
        assert lp.proc.poll() is None
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    text = "".join(lines)
    assert "\x1b" not in text and not [ch for ch in text if 0x2500 <= ord(ch) <= 0x259F]
    rows = []
    for line in text.splitlines():
        assert line == line.rstrip() and line, repr(line)
        rows.append(line.split("\t"))
        assert rows[-1][0] in PLAIN_RECORDS, line
    session = first.rstrip("\n").split("\t")
    assert session[:3] == ["session", "1", "smtp"]
    assert f"server=127.0.0.1:{smtp.port}" in session and f"user={SMTP_USER}" in session
    assert any(f.startswith("findings=") and "bcc" in f for f in session)
    assert ["auth", "1", "LOGIN", f"user={SMTP_USER}", f"password={SMTP_PASSWORD}"] == [
        r for r in rows if r[0] == "auth"
    ][0][:5]
    assert ["rcpt", "1", "t1", "hidden@example.com", "role=bcc"] in [
        r[:5] for r in rows if r[0] == "rcpt"
    ]
    assert any(r[0] == "line" and r[4].startswith("mail FROM:<alice@example.com>") for r in rows)
    summary, live_row = rows[-2], rows[-1]
    assert summary[0] == "summary" and "sessions=1" in summary and "bcc_recipients=1" in summary
    assert live_row[0] == "live" and "stopped=interrupted" in live_row
    assert "interface=lo" in live_row and "kernel_dropped=0" in live_row
    assert [r[0] for r in rows].count("session") == 1


def test_plain_transcript_lines_are_written_as_they_arrive_each_once(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    """`live --plain --transcript`, like the console's --transcript: a `line` record for each
    dialogue line while the connection is still open, not held back until it ends; the
    session's records do not repeat them, and they are the lines `read` finds in the packets."""
    pcap = tmp_path / "live.pcap"
    with live("--ports", str(smtp.port), "--plain", "--transcript", "-w", str(pcap)) as lp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=_DEADLINE) as client:
            client.ehlo("client.example.com")
            client.mail("alice@example.com")
            # Still connected, idle: the lines so far come without the session's end.
            lp.next_stdout(lambda line: "\tclient\tmail FROM:<alice@example.com>" in line)
            assert not [line for line in lp.out_lines if not line.startswith("line\t")]
            client.rcpt("to@example.com")
            client.data(MESSAGE)
        lp.next_stdout(lambda line: line.startswith("session\t"))
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    kinds = [line.split("\t")[0] for line in lines]
    first_session = kinds.index("session")
    streamed = [line.rstrip("\n") for line in lines if line.startswith("line\t")]
    assert "line" not in kinds[first_session:]  # every line before its session's records
    read = run_cli("read", str(pcap), "--plain", "--transcript")
    assert read.returncode == 0, read.stderr
    expected = [line for line in read.stdout.splitlines() if line.startswith("line\t")]
    assert len(expected) > 10 and streamed == expected


@pytest.mark.parametrize("view", ["--plain", "--no-plain"])
def test_redacted_transcript_lines_wait_for_their_session_and_are_masked(
    smtp: SmtpServer, view: str
) -> None:
    """--redact with --transcript: no dialogue line is written while its session is open (a
    secret is known for sure only once the session has ended); then all of them, the password
    masked (the AUTH LOGIN answer as sent in base64 and decoded beside it)."""
    with live("--ports", str(smtp.port), "--transcript", "--redact", view) as lp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=_DEADLINE) as client:
            client.ehlo("client.example.com")
            client.user, client.password = SMTP_USER, SMTP_PASSWORD
            client.auth("LOGIN", client.auth_login, initial_response_ok=False)
            time.sleep(1.0)  # open across several refreshes, which write no line of it
            assert lp.stdout.empty(), lp.stdout.get()
        lp.next_stdout(lambda line: "QUIT" in line)
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    text = "".join(lines)
    encoded = base64.b64encode(SMTP_PASSWORD.encode()).decode()
    assert SMTP_PASSWORD not in text and encoded.rstrip("=") not in text
    assert "235" in text and "********" in text  # every line, the secret masked


def test_json_and_plain_cannot_go_together() -> None:
    proc = run_cli("live", "-i", "lo", "--json", "--plain", "--duration", "1", timeout=_DEADLINE)
    assert proc.returncode == 2
    assert "--json and --plain cannot be used together" in proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- POP3


def test_pop3_retrieval_live_shows_login_and_message_and_pcap_agrees(
    pop3_server: Pop3Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    pcap = tmp_path / "pop3.pcap"
    with live("--json", "-w", str(pcap), "--ports", str(pop3_server.port)) as lp:
        client = poplib.POP3(pop3_server.host, pop3_server.port, timeout=_DEADLINE)
        client.user(pop3_server.user)
        client.pass_(pop3_server.password)
        client.stat()
        client.retr(1)
        client.quit()
        lp.next_stdout(_is_session)
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    records = _records(lines)
    sessions = [r for r in records if r["type"] == "session"]
    assert len(sessions) == 1
    s = sessions[0]
    assert s["protocol"] == "pop3" and s["banner"].startswith("+OK")
    (a,) = s["auth"]
    assert (a["mechanism"], a["username"], a["password"], a["success"]) == (
        "USER",
        pop3_server.user,
        pop3_server.password,
        True,
    )
    (r,) = s["messages"]
    assert r["command"] == "RETR 1" and r["number"] == 1 and not r["partial"]
    assert r["message"]["subject"] == "first message"
    assert r["message"]["from"] == [{"name": "Alice", "address": "alice@example.com"}]
    assert r["message"]["to"] == [{"name": "Bob", "address": "bob@example.com"}]
    assert s["mailbox_stats"][0]["messages"] == 2
    assert read_json(pcap) == sessions


# --------------------------------------------------------------------------- stopping


def test_count_stops_after_that_many_packets_matching_a_bpf_filter() -> None:
    port = free_port()
    with live("--json", "-c", "3", "-f", f"tcp port {port}") as lp:
        deadline = time.monotonic() + _DEADLINE
        while lp.proc.poll() is None:  # each refused connection is two packets
            assert time.monotonic() < deadline, "live did not stop after 3 packets"
            with socket.socket() as s:
                try:
                    s.connect(("127.0.0.1", port))
                except ConnectionRefusedError:
                    pass
            time.sleep(0.05)
        status, lines, stderr = lp.finish(None)
    assert status == 0, stderr
    summary = _records(lines)[-1]
    assert summary["live"]["captured"] == 3
    assert summary["live"]["stopped"] == "3 packets captured"
    assert summary["live"]["filter"] == f"tcp port {port}"


def test_duration_stops_a_quiet_capture_with_a_summary() -> None:
    with live("--json", "--duration", "0.5", "--ports", str(free_port())) as lp:
        status, lines, stderr = lp.finish(None)
    assert status == 0, stderr
    (summary,) = _records(lines)
    assert summary["type"] == "summary" and summary["sessions"] == 0
    assert summary["live"]["stopped"] == "duration reached"
    assert summary["live"]["captured"] == 0


def test_sigint_flushes_an_open_session_as_incomplete(smtp: SmtpServer) -> None:
    with live("--json", "--ports", str(smtp.port)) as lp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=_DEADLINE) as client:
            client.ehlo("client.example.com")
            client.mail("alice@example.com")
            client.rcpt("hidden@example.com")
            # Still connected. The RCPT reply reached the client, so it passed the packet
            # tap first: whatever is in the capture socket when the signal comes is analysed.
            status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    records = _records(lines)
    (s,) = [r for r in records if r["type"] == "session"]
    assert not s["complete"] and s["close_reason"] == "eof"
    assert s["transactions"][0]["rcpt_to"] == ["hidden@example.com"]
    assert records[-1]["incomplete_sessions"] == 1
    assert records[-1]["live"]["stopped"] == "interrupted"


# --------------------------------------------------------------------------- errors


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_interface_is_one_line_listing_interfaces() -> None:
    proc = run_cli("live", "-i", "nosuch0", "--duration", "1", timeout=_DEADLINE)
    assert proc.returncode == 3
    line = _one_error_line(proc.stderr)
    assert "no interface named 'nosuch0'" in line and "lo" in line


def test_invalid_filter_is_one_line_with_the_compiler_message() -> None:
    proc = run_cli("live", "-i", "lo", "-f", "tcp port", "--duration", "1", timeout=_DEADLINE)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "invalid capture filter 'tcp port'" in line and "syntax error" in line


def _as_nobody(setpriv: str) -> list[str]:
    """setpriv to user nobody, with no capability at all when nobody can run this Python and
    read this checkout, else with only a file-reading one (the interpreter may live under
    /root): never CAP_NET_RAW."""
    base = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    check = [sys.executable, "-c", "import mailsniff.commands.live"]
    if (
        subprocess.run([*base, *check], cwd=REPO, capture_output=True, timeout=_DEADLINE).returncode
        == 0
    ):
        return base
    bounding = int(
        next(
            line.split()[1]
            for line in Path("/proc/self/status").read_text().splitlines()
            if line.startswith("CapBnd:")
        ),
        16,
    )
    cap = "dac_read_search" if bounding & (1 << 2) else "dac_override"
    return [*base, f"--inh-caps=+{cap}", f"--ambient-caps=+{cap}"]


def test_unprivileged_user_is_told_to_run_as_root_or_give_cap_net_raw() -> None:
    """As `nobody`, without CAP_NET_RAW: no packet socket, one line saying what to do."""
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed"
    prefix = _as_nobody(setpriv)
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "mailsniff", "live", "-i", "lo", "--duration", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=_DEADLINE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"},
    )
    assert proc.returncode == 5
    line = _one_error_line(proc.stderr)
    assert "no permission to capture on lo" in line
    assert "root" in line and "CAP_NET_RAW" in line


# --------------------------------------------------------------------------- filter


def test_default_filter_captures_every_mail_port() -> None:
    expression = build_filter(None, None)
    assert set(DEFAULT_PORTS) == {25, 587, 2525, 110, 465, 995, 143, 993}
    assert all(f"port {p}" in expression for p in DEFAULT_PORTS)


def test_ports_and_filter_override_the_default_and_combine() -> None:
    assert build_filter([2526], None) == "tcp and (port 2526)"
    assert build_filter(None, "host 10.0.0.1") == "host 10.0.0.1"
    assert build_filter([25], "host 10.0.0.1") == "(tcp and (port 25)) and (host 10.0.0.1)"
    with pytest.raises(UsageError):
        build_filter([70000], None)


# --------------------------------------------------------------------------- live view


def test_live_view_shows_an_open_sessions_user_sender_recipients_and_bytes() -> None:
    session = Session(
        id=7,
        protocol=Protocol.SMTP,
        client=Endpoint("10.0.0.2", 40000),
        server=Endpoint("10.0.0.1", 25),
        start_ns=0,
        end_ns=0,
    )
    session.auth.append(AuthAttempt("LOGIN", username="alice@example.com", password="x"))
    t = Transaction("alice@example.com")
    t.rcpts += [RcptAttempt("to@example.com"), RcptAttempt("hidden@example.com")]
    session.transactions.append(t)
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(open_sessions_view([session], {7: 2048}, 99, console.width))
    text = console.export_text()
    assert "open sessions: 1" in text and "packets: 99" in text
    row = next(line for line in text.splitlines() if "10.0.0.2:40000" in line)
    for cell in ("7", "10.0.0.1:25", "smtp", "alice@example.com", "2: to@example.com", "2.0"):
        assert cell in row
