"""Hostile servers' replies never drive the analyst's terminal: `send`, `pop`, errors, JSON."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailsniff.status import ExitStatus
from tests.cli_runner import REPO, run_cli

#: What a hostile server puts in a refusal: clear the screen, write the clipboard (OSC 52),
#: retitle the window, ring the bell, a C1 CSI, DEL, and a right-to-left override.
PAYLOAD = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;pwned\x07\x9b31m\x7f\u202eevil\u202c"
#: How the escaped payload reads on the terminal.
SHOWN = "\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]0;pwned\\x07\\x9b31m\\x7f\\u202eevil\\u202c"
#: None of these may reach the terminal as itself.
RAW = ("\x1b", "\x07", "\x9b", "\x7f", "\u202e", "\u202c")


@contextmanager
def scripted_peer(greeting: bytes, replies: list[bytes]) -> Iterator[int]:
    """A loopback server: `greeting` on connect, then one reply per command line received."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            try:
                conn.sendall(greeting)
                pending, answers = b"", list(replies)
                while chunk := conn.recv(65536):
                    pending += chunk
                    while b"\n" in pending:
                        _, pending = pending.split(b"\n", 1)
                        conn.sendall(answers.pop(0) if answers else b"221 bye\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        thread.join(timeout=30)


def _assert_inert(text: str) -> None:
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the terminal"


def _smtp_auth_refused(port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "send",
        "--server",
        f"127.0.0.1:{port}",
        "--from",
        "a@example.com",
        "--to",
        "b@example.com",
        "--auth",
        "PLAIN",
        "--user",
        "u",
        "--password",
        "p",
        "--timeout",
        "10",
        *extra,
        timeout=60,
    )


SMTP_REPLIES = [b"250-hi\r\n250 AUTH PLAIN LOGIN\r\n", f"535 {PAYLOAD}\r\n".encode()]


def test_send_auth_refusal_is_escaped_on_stderr_and_stdout() -> None:
    with scripted_peer(b"220 mx.example ESMTP ready\r\n", SMTP_REPLIES) as port:
        proc = _smtp_auth_refused(port)
    assert proc.returncode == ExitStatus.REJECTED, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line == f"mailsniff: error: authentication failed: 535 {SHOWN}"
    assert f"S: 535 {SHOWN}" in proc.stdout.replace("\n", "")  # the transcript: same escapes
    _assert_inert(proc.stdout + proc.stderr)


def test_send_greeting_refusal_is_escaped() -> None:
    with scripted_peer(f"554 {PAYLOAD}\r\n".encode(), []) as port:
        proc = _smtp_auth_refused(port)
    assert proc.returncode == ExitStatus.REJECTED
    assert (
        proc.stderr.strip() == f"mailsniff: error: the server refused the connection: 554 {SHOWN}"
    )
    _assert_inert(proc.stdout + proc.stderr)


def test_pop_err_reply_is_escaped_on_stderr() -> None:
    replies = [b"+OK send PASS\r\n", f"-ERR {PAYLOAD}\r\n".encode()]
    with scripted_peer(b"+OK POP3 ready\r\n", replies) as port:
        proc = run_cli(
            "pop", "stat", "--server", f"127.0.0.1:{port}", "--user", "u", "--password", "p",
            "--timeout", "10", timeout=60,
        )  # fmt: skip
    assert proc.returncode == ExitStatus.REJECTED, proc.stderr
    assert proc.stderr.strip() == f"mailsniff: error: authentication failed: -ERR {SHOWN}"
    _assert_inert(proc.stdout + proc.stderr)


def test_capture_file_names_in_errors_are_escaped(tmp_path: Path) -> None:
    name = tmp_path / "evil\x1b]0;pwned\x07\u202e.pcap"
    proc = run_cli("read", str(name))
    assert proc.returncode == ExitStatus.INPUT_ERROR
    assert "evil\\x1b]0;pwned\\x07\\u202e.pcap" in proc.stderr
    _assert_inert(proc.stderr)


def _run_on_pty(*args: str) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; (status, all it wrote)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"},
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(controller)
    status = proc.wait(timeout=30)
    return status, b"".join(chunks).decode("utf-8")


def test_json_on_a_terminal_escapes_controls_and_bidi(tmp_path: Path) -> None:
    capture = tmp_path / "hostile.pcap"
    with scripted_peer(b"220 mx.example ESMTP ready\r\n", SMTP_REPLIES) as port:
        sent = _smtp_auth_refused(port, "--capture", str(capture))
    assert sent.returncode == ExitStatus.REJECTED, sent.stderr
    status, output = _run_on_pty("read", str(capture), "--json", "--transcript", "--no-progress")
    assert status == 0, output
    _assert_inert(output)
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    [session] = [r for r in records if r["type"] == "session"]
    assert session["auth"][0]["reply"] == f"535 {PAYLOAD}"  # escaped, not altered
    assert f"535 {PAYLOAD}" in [line["text"] for line in session["transcript"]]
