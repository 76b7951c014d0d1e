"""An output that fails or goes away never cuts an export short, and says so in one line.

Real subprocesses: a closed pipe (`| head -1`), /dev/full, closed stdin/stdout, a file-size
limit (RLIMIT_FSIZE, as a full disk: the write fails with EFBIG), SIGTERM.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mailsniff.status import ExitStatus
from tests.cli_runner import REPO
from tests.e2e.synth import Conn, frames, tcp_segments, write_pcap
from tests.export.captures import fast_pcap, message_with_attachments, smtp_steps

DEADLINE_S = 120
SESSIONS = 12


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def message(n: int) -> bytes:
    return f"From: a@example.com\r\nSubject: n{n}\r\n\r\nbody {n}\r\n".encode()


def many_sessions(path: Path) -> Path:
    """SESSIONS SMTP connections, one message each: one JSON line per session."""
    out: list[bytes] = []
    for n in range(SESSIONS):
        out += frames(
            tcp_segments(
                smtp_steps([message(n)], login=("u", f"p{n}")), Conn(client_port=41000 + n)
            )
        )
    return write_pcap(path, out)


def run(
    *args: str,
    stdout: int | None = subprocess.PIPE,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mailsniff", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=REPO,
        timeout=DEADLINE_S,
        preexec_fn=preexec,
    )


def assert_fully_extracted(folder: Path) -> None:
    names = {p.name for p in folder.glob("*.eml")}
    assert names == {f"{sha256(message(n))}.eml" for n in range(SESSIONS)}
    assert len((folder / "manifest.jsonl").read_bytes().splitlines()) == SESSIONS
    assert not list(folder.glob(".mailsniff-*"))


def test_a_closed_pipe_does_not_stop_the_export(tmp_path: Path) -> None:
    # `mailsniff read --json --extract D | head -1`, the reader gone before the first line.
    capture = many_sessions(tmp_path / "c.pcap")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", "read", str(capture), "--json", "--extract", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=DEADLINE_S) == 0, err
    assert err == ""
    assert_fully_extracted(out)


def test_dev_full_is_one_line_and_its_own_status_after_a_full_export(tmp_path: Path) -> None:
    capture = many_sessions(tmp_path / "c.pcap")
    for n, extra in enumerate((["--json"], [], ["--transcript"])):
        out = tmp_path / f"out{n}"
        with open("/dev/full", "wb") as full:
            proc = run("read", str(capture), *extra, "--extract", str(out), stdout=full.fileno())
        err = proc.stderr.decode()
        assert proc.returncode == ExitStatus.WRITE_FAILED, err
        assert err == "mailsniff: error: cannot write to standard output: No space left on device\n"
        assert_fully_extracted(out)
    with open("/dev/full", "wb") as full:
        proc = run("creds", str(capture), "--json", stdout=full.fileno())
    assert proc.returncode == ExitStatus.WRITE_FAILED
    assert proc.stderr.decode().startswith("mailsniff: error: cannot write to standard output")


def test_closed_stdout_and_closed_stdin_are_one_line_each(tmp_path: Path) -> None:
    capture = many_sessions(tmp_path / "c.pcap")
    out = tmp_path / "out"
    proc = run("read", str(capture), "--json", "--extract", str(out), preexec=lambda: os.close(1))
    assert proc.returncode == ExitStatus.WRITE_FAILED, proc.stderr
    assert proc.stderr == b"mailsniff: error: cannot write to standard output: it is closed\n"
    assert_fully_extracted(out)

    proc = run("read", "-", "--json", preexec=lambda: os.close(0))
    assert proc.returncode == ExitStatus.INPUT_ERROR, proc.stderr
    assert proc.stderr == b"mailsniff: error: cannot read standard input: it is closed\n"


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    small = message(1)
    big = message_with_attachments([(b"big.bin", os.urandom(600_000))])
    capture = fast_pcap(tmp_path / "c.pcap", smtp_steps([small, big, message(2)]))
    out = tmp_path / "out"
    proc = run("read", str(capture), "--extract", str(out), "--summary", preexec=_limit_file_size)
    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.WRITE_FAILED, err
    assert err == f"mailsniff: error: cannot write to {out}: File too large\n"
    names = {p.name for p in out.iterdir()}
    assert names == {f"{sha256(small)}.eml", "attachments", "manifest.jsonl"}

    folder = tmp_path / "m"
    folder.mkdir()
    box = folder / "out.mbox"
    proc = run("read", str(capture), "--mbox", str(box), "--summary", preexec=_limit_file_size)
    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.WRITE_FAILED, err
    assert err.startswith(f"mailsniff: error: cannot write to {box}: File too large")
    assert err.count("\n") == 1
    assert [p.name for p in folder.iterdir()] == ["out.mbox"]
    # only the whole first entry: the failed one was cut off again
    data = box.read_bytes()
    assert data.startswith(b"From alice@example.com ")
    assert data.count(b"X-Mailsniff-SHA256: ") == 1
    length = re.search(rb"\nX-Mailsniff-Length: (\d{20})\n", data)
    assert length is not None and int(length.group(1)) == len(data)


def test_sigterm_removes_the_temporary_file_like_ctrl_c(tmp_path: Path) -> None:
    big = message_with_attachments([(b"big.bin", os.urandom(3_000_000))])
    data = fast_pcap(tmp_path / "c.pcap", smtp_steps([big])).read_bytes()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", "read", "-", "--extract", str(out), "--summary"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write(data[: len(data) - 1_000_000])
        proc.stdin.flush()
        deadline = time.monotonic() + DEADLINE_S
        while not [p for p in out.glob(".mailsniff-*.part") if p.stat().st_size > 0]:
            assert proc.poll() is None, "the reader ended before its input did"
            assert time.monotonic() < deadline, "the extraction never reached the message"
            time.sleep(0.05)
        # Once it waits for more input (a signal that lands inside a C-level read loop waits
        # for that read to end, for SIGINT as well), as `kill` finds a stalled pipeline.
        while not Path(f"/proc/{proc.pid}/wchan").read_text().endswith("pipe_read"):
            assert time.monotonic() < deadline, "the reader never waited for input"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE_S) == ExitStatus.TERMINATED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=DEADLINE_S)
        proc.stdin.close()
    assert proc.stderr.read() == b"mailsniff: terminated\n"
    assert sorted(p.name for p in out.iterdir()) == ["attachments", "manifest.jsonl"]
