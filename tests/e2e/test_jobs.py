"""`read --jobs N`: the same bytes out for 1, 2 and 4 worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailsniff.status import ExitStatus
from tests.cli_runner import PCAPS, PUBLIC, REPO, run_cli
from tests.e2e import synth
from tests.e2e.many_flows import many_connections, write_records
from tests.e2e.test_network_conditions import fragmented

PUBLIC_CAPTURES = [
    "zeek/smtp.pcap",
    "zeek/pop3.pcap",
    "zeek/smtp-bdat-gap.pcap",
    "zeek/smtp-one-side-only.pcap",
    "zeek/smtp-bdat-cmd-invalid.pcapng",
    "zeek/pop3-bad-list-retr-crafted.pcap",
    "suricata-verify/smtp-pipelining.pcap",
    "suricata-verify/pop3-auth-01.pcap",
    "suricata-verify/smtp-bug-5981.pcap",
    "ndpi/pop3.pcapng",
    "ndpi/smtp-starttls.pcap",
    "arkime/socks5-smtp-503.pcap",
    "arkime/smtp-zip.pcap",
]


def _outputs(*args: str, jobs: tuple[int, ...] = (1, 2, 4)) -> list[str]:
    outs = []
    for n in jobs:
        proc = run_cli("read", *args, "--jobs", str(n))
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        outs.append(proc.stdout)
    return outs


@pytest.mark.parametrize(
    "capture",
    [*(str(p) for p in sorted(PCAPS.glob("*.pcap"))), *(str(PUBLIC / c) for c in PUBLIC_CAPTURES)],
    ids=lambda c: Path(c).name,
)
def test_json_is_byte_identical_for_1_2_and_4_jobs(capture: str) -> None:
    one, two, four = _outputs(capture, "--json")
    assert one.count('"type":"session"') >= 1
    assert two == one
    assert four == one


def test_many_interleaved_connections_with_fragments_and_unknown_ports(tmp_path: Path) -> None:
    """18 connections spread over the workers: ids, order and counts as one process gives,
    including IPv4 fragments (no ports) and flows found by their greeting on port 2626."""
    path = write_records(tmp_path / "many.pcap", many_connections())
    one, two, four = _outputs(str(path), "--json")
    assert two == one and four == one
    records = [json.loads(line) for line in one.splitlines()]
    sessions = [r for r in records if r["type"] == "session"]
    assert sorted(r["id"] for r in sessions) == list(range(1, 19))
    assert sum(1 for r in sessions if r["server"]["port"] == 2626) == 4
    summary = records[-1]
    assert summary["decode"]["fragments"] > 1000
    assert summary["messages"] == 36
    servers = {(r["client"]["ip"], r["client"]["port"]) for r in sessions}
    assert len(servers) == 18


def test_fragments_arriving_last_fragment_first(tmp_path: Path) -> None:
    path = synth.write_pcap(tmp_path / "frag.pcap", fragmented())
    one, two, four = _outputs(str(path), "--json")
    assert two == one and four == one
    assert json.loads(one.splitlines()[-1])["decode"]["fragments"] > 20


def test_console_report_is_the_same(tmp_path: Path) -> None:
    path = write_records(tmp_path / "many.pcap", many_connections(8))
    one, two = _outputs(str(path), "--transcript", jobs=(1, 2))
    assert "40007" in one
    assert two == one


def test_session_filter_and_host_filter_use_the_global_ids(tmp_path: Path) -> None:
    path = write_records(tmp_path / "many.pcap", many_connections())
    one, two = _outputs(str(path), "--json", "--session", "4", "--session", "15", jobs=(1, 2))
    assert two == one
    ids = [json.loads(line)["id"] for line in one.splitlines()[:-1]]
    assert ids == [15, 4] or ids == [4, 15]
    one, two = _outputs(str(path), "--json", "--host", "192.0.2.25", jobs=(1, 2))
    assert two == one
    assert json.loads(one.splitlines()[-1])["sessions"] == 9


def test_jobs_must_be_positive() -> None:
    proc = run_cli("read", str(PCAPS / "seed-telnet.pcap"), "--jobs", "0")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_a_full_closed_or_gone_output_is_reported_as_one_process_reports_it(
    tmp_path: Path,
) -> None:
    """The parent writes the workers' lines as bytes: /dev/full, a closed stdout and a reader
    gone (`| head -1`) end as they do with one process."""
    path = str(write_records(tmp_path / "many.pcap", many_connections(8)))
    argv = [sys.executable, "-m", "mailsniff", "read", path, "--json"]
    for jobs in ("1", "2"):
        with open("/dev/full", "wb") as full:
            proc = subprocess.run(
                [*argv, "--jobs", jobs], stdout=full, stderr=subprocess.PIPE, cwd=REPO
            )
        assert proc.returncode == ExitStatus.WRITE_FAILED, proc.stderr
        assert proc.stderr == (
            b"mailsniff: error: cannot write to standard output: No space left on device\n"
        )
        proc = subprocess.run(
            [*argv, "--jobs", jobs], capture_output=True, cwd=REPO, preexec_fn=lambda: os.close(1)
        )
        assert proc.returncode == ExitStatus.WRITE_FAILED, proc.stderr
        assert proc.stderr == b"mailsniff: error: cannot write to standard output: it is closed\n"
        gone = subprocess.Popen(
            [*argv, "--jobs", jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
        )
        assert gone.stdout is not None and gone.stderr is not None
        gone.stdout.close()
        assert gone.wait(timeout=120) == 0
        assert gone.stderr.read() == b""


def test_a_capture_cut_short_reads_the_same_with_every_job_count(tmp_path: Path) -> None:
    """Worker 0 runs in the parent (run_sharded `local`): a record cut by the end of the file
    is reported there, with the same sessions, warning and status as one process gives."""
    whole = write_records(tmp_path / "many.pcap", many_connections(8)).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 100])
    procs = [run_cli("read", str(cut), "--json", "--jobs", jobs) for jobs in ("1", "2", "4")]
    assert [p.returncode for p in procs] == [ExitStatus.TRUNCATED] * 3
    assert "capture ends inside a record" in procs[0].stderr
    assert procs[1].stdout == procs[0].stdout and procs[2].stdout == procs[0].stdout
    assert procs[1].stderr == procs[0].stderr and procs[2].stderr == procs[0].stderr
    assert json.loads(procs[0].stdout.splitlines()[-1])["sessions"] == 8
