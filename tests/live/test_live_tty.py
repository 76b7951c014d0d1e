"""`mailsniff live` in a terminal: the open-sessions view never erases or splits output lines.

stdout and stderr share one pseudo-terminal, as in an analyst's shell; everything written is
replayed through a terminal emulator (pyte) and the screen is checked line by line.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import smtplib
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pyte
import pytest

from tests.cli_runner import REPO, run_cli
from tests.servers import SMTP_PASSWORD, SMTP_USER, SmtpServer, running_smtp

COLUMNS, ROWS = 160, 2000  # tall enough that nothing scrolls off the emulated screen
_DEADLINE = 60.0

MESSAGE = (
    "From: Alice <alice@example.com>\r\n"
    "To: Tom <to@example.com>\r\n"
    "Subject: quarterly numbers\r\n"
    "\r\n"
    "See attached.\r\n"
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp(tls=False) as server:
        yield server


class TerminalRun:
    """A command whose stdout and stderr are one pseudo-terminal; what it wrote, collected."""

    def __init__(self, *args: str) -> None:
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailsniff", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
            env={**env, "TERM": "xterm-256color"},
        )
        os.close(terminal)
        self.data = bytearray()

    def __enter__(self) -> TerminalRun:
        return self

    def __exit__(self, *exc: object) -> None:
        """The command killed if it still runs (a failed wait or assertion left it running)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.controller >= 0:
            os.close(self.controller)
            self.controller = -1

    def pump(self, timeout: float) -> bool:
        """Read what arrived within `timeout`; False once the terminal is closed."""
        ready, _, _ = select.select([self.controller], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.controller, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            return False
        self.data += chunk
        return bool(chunk)

    def wait_for(self, text: bytes) -> None:
        deadline = time.monotonic() + _DEADLINE
        while text not in self.data:
            assert time.monotonic() < deadline, f"never saw {text!r}: {bytes(self.data)!r}"
            assert self.pump(0.1), bytes(self.data)

    def finish(self) -> tuple[int, list[str]]:
        """SIGINT, read to the end; (status, the emulated screen's lines)."""
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + _DEADLINE
        while time.monotonic() < deadline and self.pump(0.2):
            if self.proc.poll() is not None and not select.select([self.controller], [], [], 0)[0]:
                break
        status = self.proc.wait(timeout=_DEADLINE)
        self._close()
        screen = pyte.Screen(COLUMNS, ROWS)
        stream = pyte.ByteStream(screen)
        stream.feed(bytes(self.data).replace(b"\n", b"\r\n"))  # the pty's ONLCR
        return status, [line.rstrip() for line in screen.display]


def _send(server: SmtpServer, n: int) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=_DEADLINE) as client:
        client.ehlo("client.example.com")
        client.user, client.password = SMTP_USER, SMTP_PASSWORD
        client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        time.sleep(0.6)  # a few refreshes of the view while the session is open
        client.sendmail("alice@example.com", [f"to{n}@example.com"], MESSAGE)


def test_live_on_a_terminal_keeps_every_output_line_whole(smtp: SmtpServer, tmp_path: Path) -> None:
    pcap = tmp_path / "live.pcap"
    args = ("live", "-i", "lo", "--ports", str(smtp.port), "--transcript", "-w", str(pcap))
    with TerminalRun(*args) as run:
        run.wait_for(b"Ctrl-C to stop")
        for n in range(3):
            _send(smtp, n)
            run.wait_for(f"to{n}@example.com".encode())
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:  # let the view redraw over what was printed
                run.pump(0.1)
        status, screen = run.finish()
    assert status == 0
    # What the terminal must show, taken from the packets `live` wrote (read with --json).
    read = run_cli("read", str(pcap), "--json", "--transcript")
    sessions = [json.loads(line) for line in read.stdout.splitlines()][:-1]
    assert len(sessions) == 3, read.stderr
    expected: list[str] = []
    for s in sessions:
        for line in s["transcript"]:
            arrow = "C:" if line["direction"] == "client" else "S:"
            expected.append(f"#{s['id']} {arrow} {line['text']}")
        [txn] = s["transactions"]
        expected.append(f"sha256 {txn['message']['sha256']}")
        expected.append(f"DATA reply {txn['data_reply']}")
    shown = "\n".join(screen)
    rows = [" ".join(row.split()) for row in screen]
    missing = [e for e in expected if not any(" ".join(e.split()) in row for row in rows)]
    assert not missing, f"lines lost or broken on the terminal: {missing}\n{shown}"
    # Panels start at the beginning of a row, never in the middle of another line.
    panel_rows = [row for row in screen if "╭─ Session" in row]
    assert len(panel_rows) == 3 and all(row.startswith("╭") for row in panel_rows), panel_rows
    assert "open sessions:" not in shown  # the transient view is gone at the end


def test_plain_on_a_terminal_draws_no_live_view_over_its_records(smtp: SmtpServer) -> None:
    with TerminalRun("live", "-i", "lo", "--ports", str(smtp.port), "--plain") as run:
        run.wait_for(b"Ctrl-C to stop")
        _send(smtp, 0)  # open for 0.6 s: a view would be drawn several times meanwhile
        run.wait_for(b"session\t1\tsmtp\t")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            run.pump(0.1)
        status, screen = run.finish()
    assert status == 0
    raw = bytes(run.data).decode("utf-8")
    assert "open sessions" not in raw and "\x1b[?25l" not in raw  # no rich Live, ever
    assert not [ch for ch in raw if 0x2500 <= ord(ch) <= 0x259F]  # no box drawing
    records = [line for line in raw.splitlines() if not line.startswith("mailsniff: ")]
    kinds = [line.split("\t")[0] for line in records]
    assert kinds == ["session", "auth", "mail", "rcpt", "message"] + ["finding"] * 3 + [
        "summary",
        "live",
    ]
    assert all(line == line.rstrip() for line in records)
    assert records[3].split("\t")[3:5] == ["to0@example.com", "role=bcc"]
