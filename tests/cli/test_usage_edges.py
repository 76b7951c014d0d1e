"""Option values at the edges: port lists, out-of-range ports and sessions, too-short files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mailsniff.status import ExitStatus
from tests.cli_runner import PCAPS, run_cli

#: Three sessions: 1 SMTP on port 25, 2 POP3 on port 110, 3 SMTP on port 25.
SEED = str(PCAPS / "seed-telnet.pcap")


def _session_ids(*extra: str) -> list[int]:
    proc = run_cli("read", SEED, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return [int(line.split('"id":')[1].split(",")[0]) for line in proc.stdout.splitlines()[:-1]]


def _one_line_error(proc: subprocess.CompletedProcess[str], status: ExitStatus) -> str:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("mailsniff: error: ")
    return line


@pytest.mark.parametrize(
    "ports",
    [["--port", "25,110"], ["--port", "25", "--port", "110"], ["--port", " 110 , 25 "]],
)
def test_read_port_takes_comma_lists_and_repetition(ports: list[str]) -> None:
    assert _session_ids(*ports) == [1, 2, 3]


def test_read_port_filters_to_the_listed_ports() -> None:
    assert _session_ids("--port", "110") == [2]


@pytest.mark.parametrize("value", ["99999", "0", "25,x", "25,,110", "-1"])
def test_read_bad_port_is_a_usage_error(value: str) -> None:
    line = _one_line_error(run_cli("read", SEED, f"--port={value}"), ExitStatus.USAGE)
    assert "--port: not a TCP port (1-65535)" in line


@pytest.mark.parametrize("value", ["99999", "0", "25,smtp"])
def test_live_bad_port_is_a_usage_error_from_the_same_parser(value: str) -> None:
    line = _one_line_error(run_cli("live", f"--ports={value}", "-c", "1"), ExitStatus.USAGE)
    assert "--ports: not a TCP port (1-65535)" in line


@pytest.mark.parametrize("value", ["-5", "0"])
def test_a_session_id_below_one_is_a_usage_error(value: str) -> None:
    line = _one_line_error(run_cli("read", SEED, f"--session={value}"), ExitStatus.USAGE)
    assert f"session IDs start at 1, not {value}" in line


@pytest.mark.parametrize("json", [False, True])
def test_a_session_the_capture_does_not_have_is_an_error_naming_the_range(json: bool) -> None:
    proc = run_cli("read", SEED, "--session", "9", *(["--json"] if json else []))
    line = _one_line_error(proc, ExitStatus.USAGE)
    assert line == "mailsniff: error: --session 9: no such session (the capture has sessions 1-3)"
    if not json:
        assert proc.stdout == ""  # no empty table


def test_a_present_session_still_reads() -> None:
    assert _session_ids("--session", "2") == [2]


@pytest.mark.parametrize("size", [1, 4, 10, 23])
def test_a_file_too_short_for_a_pcap_header_is_not_a_capture(tmp_path: Path, size: int) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(Path(SEED).read_bytes()[:size])
    line = _one_line_error(run_cli("read", str(path)), ExitStatus.INPUT_ERROR)
    if size >= 4:
        assert "too short to be a pcap capture" in line


def test_a_file_too_short_for_a_pcapng_section_header_is_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "short.pcapng"
    path.write_bytes(b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c")  # 10 bytes of an SHB
    line = _one_line_error(run_cli("read", str(path)), ExitStatus.INPUT_ERROR)
    assert "too short to be a pcapng capture (10 bytes" in line
