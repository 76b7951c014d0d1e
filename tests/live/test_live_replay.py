"""`live` against `read` of the same traffic: a capture replayed with tcpreplay, sniffed live.

Each test runs in a network namespace of its own (its own `lo`), so the replayed traffic never
meets other tests' loopback traffic, nor theirs ours. Rates are modest: CI stays quick; the
figures at 40k-100k packets/s come from benchmarks/live_replay.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import REPO, run_cli
from tests.jsonschema_check import validate_lines

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
_DEADLINE = 120.0


def _normalise(value: Any) -> Any:
    """A record without its capture times (a replay has its own), nor what derives from them."""
    if isinstance(value, dict):
        return {
            k: _normalise(v)
            for k, v in value.items()
            if k not in ("uid", "duration") and not (isinstance(v, str) and _ISO.match(v))
        }
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _sessions(text: str) -> tuple[dict[int, Any], dict[str, Any]]:
    records = validate_lines(text)
    assert records and records[-1]["type"] == "summary"
    sessions = {r["id"]: _normalise(r) for r in records if r["type"] == "session"}
    return sessions, records[-1]


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"mstest{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def mail_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    """About 8,000 packets of SMTP/POP3 (and other) traffic, and `read --json` of it."""
    path = tmp_path_factory.mktemp("replay") / "mail.pcap"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "make_capture.py"), str(path)]
        + ["--packets", "8000", "--seed", "7"],
        check=True,
        capture_output=True,
    )
    proc = run_cli("read", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    sessions, _ = _sessions(proc.stdout)
    assert len(sessions) > 40
    return path, sessions


class _Live:
    """`mailsniff live -i lo --json ARGS` in the namespace, output to temporary files."""

    def __init__(self, netns: str, *args: str) -> None:
        self.out = tempfile.TemporaryFile("w+")
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "mailsniff", "live"]
            + ["-i", "lo", "--json", *args],
            cwd=REPO,
            stdout=self.out,
            stderr=self.err,
        )
        deadline = time.monotonic() + _DEADLINE
        while "capturing on" not in self.stderr():
            assert self.proc.poll() is None, self.stderr()
            assert time.monotonic() < deadline, "live did not start"
            time.sleep(0.1)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def settle(self) -> None:
        """Wait until the output stops growing (analysis caught up with the capture)."""
        size, still, deadline = -1, 0, time.monotonic() + _DEADLINE
        while still < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.out.seek(0, 2)
            still = still + 1 if now == size else 0
            size = now

    def finish(self) -> tuple[dict[int, Any], dict[str, Any], str]:
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=_DEADLINE) == 0, self.stderr()
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        err = self.stderr()
        self.err.close()
        assert "Traceback" not in err
        sessions, summary = _sessions(text)
        return sessions, summary, err


def _replay(netns: str, path: Path, pps: int) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "tcpreplay", "-q", "-i", "lo", f"--pps={pps}", str(path)],
        check=True,
        capture_output=True,
    )


def test_replayed_traffic_sniffed_live_gives_what_read_gives(
    netns: str, mail_capture: tuple[Path, dict[int, Any]]
) -> None:
    path, expected = mail_capture
    live = _Live(netns)
    _replay(netns, path, 4000)
    live.settle()
    sessions, summary, _ = live.finish()
    assert summary["live"]["kernel_dropped"] == 0
    assert summary["live"]["mailsniff_dropped"] == 0
    assert summary["incomplete_sessions"] == 0
    assert sessions == expected


def test_two_analysis_jobs_print_every_session_as_it_ends_and_give_what_read_gives(
    netns: str, mail_capture: tuple[Path, dict[int, Any]], tmp_path: Path
) -> None:
    path, expected = mail_capture
    written = tmp_path / "live.pcap"
    live = _Live(netns, "--jobs", "2", "-w", str(written))
    _replay(netns, path, 4000)
    live.settle()
    live.out.seek(0)
    shown = live.out.read().count('"type":"session"')
    sessions, summary, _ = live.finish()
    # Every session was out before the stop: workers report progress when traffic pauses.
    assert shown == len(expected)
    assert summary["live"]["kernel_dropped"] == 0
    assert summary["live"]["mailsniff_dropped"] == 0
    assert sessions == expected
    # -w (written by one of the workers) holds every packet analysed, with live's times.
    proc = run_cli("read", str(written), "--json")
    assert proc.returncode == 0, proc.stderr
    assert _sessions(proc.stdout)[0] == sessions
    assert summary["live"]["captured"] == _sessions(proc.stdout)[1]["frames"]


def test_analysis_stalled_during_a_burst_spills_and_catches_up_losing_nothing(
    netns: str, mail_capture: tuple[Path, dict[int, Any]]
) -> None:
    """A 2 MiB ring, and analysis stopped (SIGSTOP) for the whole replay of ~5 MB: the capture
    process keeps moving the ring's blocks to the spool; analysis catches up once resumed."""
    path, expected = mail_capture
    live = _Live(netns, "-B", "2M")
    os.kill(live.proc.pid, signal.SIGSTOP)  # the analysing process; capture runs in its own
    try:
        _replay(netns, path, 10000)
        time.sleep(0.5)
    finally:
        os.kill(live.proc.pid, signal.SIGCONT)
    live.settle()
    sessions, summary, _ = live.finish()
    stats = summary["live"]
    assert stats["buffer_size"] == 2 * 1024 * 1024
    assert stats["spill_peak"] > 2 * stats["buffer_size"]  # more than the ring could have held
    assert stats["kernel_dropped"] == 0 and stats["mailsniff_dropped"] == 0
    assert sessions == expected


def test_spill_overflow_is_counted_and_reported_never_silent(netns: str, tmp_path: Path) -> None:
    """Analysis stopped while more than --spill-size arrives: the packets past the bound are
    dropped, counted as mailsniff's drops, and the sessions around them show it."""
    path = tmp_path / "big.pcap"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "make_capture.py"), str(path)]
        + ["--packets", "45000", "--seed", "3"],
        check=True,
        capture_output=True,
    )
    live = _Live(netns, "--spill-size", "16M")
    os.kill(live.proc.pid, signal.SIGSTOP)
    try:
        _replay(netns, path, 25000)
        time.sleep(0.5)
    finally:
        os.kill(live.proc.pid, signal.SIGCONT)
    live.settle()
    sessions, summary, err = live.finish()
    dropped = summary["live"]["mailsniff_dropped"]
    assert dropped > 0
    assert summary["live"]["spill_peak"] <= 16 * 1024 * 1024
    assert any("dropped" in w and "mailsniff" in w for w in summary["warnings"])
    assert f"{dropped} by mailsniff" in err
    assert summary["incomplete_sessions"] > 0 or summary["gaps"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-B", "lots"], "-B/--buffer-size: not a size: 'lots'"),
        (["-B", "512"], "-B/--buffer-size: 512 is less than the least ring, 1 MiB"),
        (["--buffer-size", "64T"], "-B/--buffer-size: not a size: '64T'"),
        (["-B", "100000G"], "-B/--buffer-size: 100000G is more than"),
        (["--spill-size", "1M"], "--spill-size: 1M is less than the least spill, 16 MiB"),
    ],
)
def test_bad_buffer_or_spill_size_is_one_line(args: list[str], message: str) -> None:
    proc = run_cli("live", "-i", "lo", *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_buffer_size_in_kib_as_tcpdump_or_with_a_unit_sets_the_ring(netns: str) -> None:
    for value, size in (("4096", 4 * 1024 * 1024), ("3m", 3 * 1024 * 1024)):
        live = _Live(netns, "-B", value)
        _, summary, _ = live.finish()
        assert summary["live"]["buffer_size"] == size


def test_count_ends_a_replayed_capture_after_that_many_packets(
    netns: str, mail_capture: tuple[Path, dict[int, Any]]
) -> None:
    """-c ends the capture after that many packets: what was seen is analysed, nothing more."""
    path, _ = mail_capture
    live = _Live(netns, "-c", "500")
    _replay(netns, path, 4000)
    assert live.proc.wait(timeout=_DEADLINE) == 0
    live.out.seek(0)
    records = [json.loads(line) for line in live.out.read().splitlines()]
    summary = records[-1]
    assert summary["live"]["captured"] == 500
    assert summary["live"]["stopped"] == "500 packets captured"
    assert summary["frames"] == 500


def test_capture_process_ends_and_removes_its_spool_when_mailsniff_is_killed(netns: str) -> None:
    live = _Live(netns)
    children = Path(f"/proc/{live.proc.pid}/task/{live.proc.pid}/children").read_text().split()
    spools = set()
    for child in children:
        for fd in Path(f"/proc/{child}/fd").iterdir():
            target = os.readlink(fd)
            if "mailsniff-spool-" in target:
                spools.add(Path(target).parent)
    assert len(spools) == 1
    (spool,) = spools
    assert spool.is_dir()
    live.proc.kill()  # no chance to clean up: its capture process must notice by itself
    live.proc.wait(timeout=_DEADLINE)
    deadline = time.monotonic() + 10
    while (spool.exists() or any(Path(f"/proc/{c}").exists() for c in children)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert not spool.exists()
    assert not any(Path(f"/proc/{c}/status").exists() for c in children)
