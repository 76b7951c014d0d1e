"""Bad input: one clear line on stderr, a documented exit status, never a traceback."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mailsniff.status import ExitStatus
from tests.jsonschema_check import validate_lines
from tests.paths import EQUIVALENTS, PCAPS, PUBLIC, REPO


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailsniff", *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], status: ExitStatus) -> str:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mailsniff: error: ")
    return lines[0]


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    line = assert_one_line_error(run("read", str(tmp_path / "nope.pcap")), ExitStatus.INPUT_ERROR)
    assert "nope.pcap" in line


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    assert_one_line_error(run("read", str(tmp_path)), ExitStatus.INPUT_ERROR)


def test_empty_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    assert_one_line_error(run("read", str(path)), ExitStatus.INPUT_ERROR)


def test_text_file_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("HELO tylin\r\nMAIL FROM:<a@b>\r\n")
    line = assert_one_line_error(run("read", str(path)), ExitStatus.INPUT_ERROR)
    assert "not a pcap or pcapng" in line


def test_gzip_of_text_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.gz"
    path.write_bytes(gzip.compress(b"hello world, not a capture at all"))
    assert_one_line_error(run("read", str(path)), ExitStatus.INPUT_ERROR)


def test_unsupported_link_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "user0.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147)
    record = struct.pack("<IIII", 1, 0, 4, 4) + b"abcd"
    path.write_bytes(header + record)
    line = assert_one_line_error(run("read", str(path)), ExitStatus.INPUT_ERROR)
    assert "link type 147" in line


def test_unknown_option_is_a_usage_error() -> None:
    proc = run("read", "--no-such-option", "x.pcap")
    assert proc.returncode == ExitStatus.USAGE
    assert "Traceback" not in proc.stderr


def test_bad_protocol_value_is_a_usage_error() -> None:
    proc = run("read", "--protocol", "gopher", str(REPO / "pcaps" / "seed-telnet.pcap"))
    assert proc.returncode == ExitStatus.USAGE
    assert "Traceback" not in proc.stderr


def test_bad_host_is_a_usage_error() -> None:
    proc = run("read", "--host", "not-an-ip", str(REPO / "pcaps" / "seed-telnet.pcap"))
    line = assert_one_line_error(proc, ExitStatus.USAGE)
    assert "not-an-ip" in line


@pytest.mark.parametrize("cut", [7, 40, 200])
def test_truncated_capture_reports_what_was_read_then_warns(tmp_path: Path, cut: int) -> None:
    whole = (PUBLIC / "zeek" / "smtp.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(whole[: len(whole) // 2 + cut])
    proc = run("read", str(path), "--json")
    assert proc.returncode == ExitStatus.TRUNCATED, proc.stderr
    assert "Traceback" not in proc.stderr
    records = validate_lines(proc.stdout)
    sessions = [r for r in records if r["type"] == "session"]
    assert sessions, "sessions seen before the damage must still be reported"
    assert records[-1]["type"] == "summary" and records[-1]["warnings"]
    warning = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("mailsniff: warning: ")


def test_corrupt_record_length_in_public_capture() -> None:
    # smtp-to-comma.pcap (suricata-verify's, attachment left out): 18 good records, then a bogus
    # 3.9 GB record length.
    proc = run("read", str(EQUIVALENTS / "smtp-to-comma.pcap"), "--json")
    assert proc.returncode == ExitStatus.TRUNCATED, proc.stderr
    records = validate_lines(proc.stdout)
    assert records[-1]["frames"] == 18
    [session] = [r for r in records if r["type"] == "session"]
    assert session["protocol"] == "smtp"
    assert "record 19" in proc.stderr


def test_closed_output_pipe_ends_quietly() -> None:
    # `mailsniff read big.pcap | head -1`: no traceback, no "Exception ignored", status 0.
    # The output (several hundred KB) is far larger than a pipe buffer, so writes do fail.
    capture = PUBLIC / "suricata-verify" / "pop3.pcap"
    for extra in (["--transcript"], ["--json", "--transcript"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailsniff", "read", str(capture), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(5)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
        assert err == ""


def test_plain_output_into_a_closed_pipe_ends_quietly() -> None:
    """`mailsniff read small.pcap | head -1`: the report is written at the end, in one go, and
    the pipe is gone by then; that is the reader leaving, not a write error (status 0)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailsniff", "read", str(PCAPS / "seed-telnet.pcap"), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
