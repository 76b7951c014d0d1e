"""`read --scheduler`: the shards run on a real Dask cluster (a scheduler and two workers on
loopback), and the output is the local run's, byte for byte, even when a worker is lost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import PCAPS, PUBLIC, REPO, run_cli
from tests.dask_cluster import LocalCluster, start_cluster
from tests.e2e.many_flows import many_connections, write_records
from tests.import_probe import run_probed

CAPTURES = [
    str(PCAPS / "cc-bcc-smtplib.pcap"),
    str(PCAPS / "pipelining-bdat.pcap"),
    str(PUBLIC / "zeek/smtp-bdat-gap.pcap"),
    str(PUBLIC / "suricata-verify/pop3-auth-01.pcap"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = start_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield running
    finally:
        running.stop()


def _local(*args: str) -> str:
    proc = run_cli("read", *args, "--jobs", "1")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _on_cluster(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    proc = run_cli("read", *args, "--scheduler", cluster.address)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr + cluster.log()
    return proc


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: Path(c).name)
def test_json_equals_the_local_run(cluster: LocalCluster, capture: str) -> None:
    out = _on_cluster(cluster, capture, "--json").stdout
    assert out.count('"type":"session"') >= 1
    assert out == _local(capture, "--json")


def test_a_set_of_files_by_glob_equals_the_local_run(cluster: LocalCluster) -> None:
    """Several files read as one capture (a pattern the workers expand nothing of: the client
    sends paths), with the set's warnings naming the files as the user gave them."""
    pattern = str(PCAPS / "*.pcap")
    proc = _on_cluster(cluster, pattern, "--json")
    assert proc.stdout == _local(pattern, "--json")
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["sessions"] >= 5
    assert summary["warnings"], "the shipped captures overlap in time: the set says so"
    assert all(str(PCAPS) in w for w in summary["warnings"] if ".pcap" in w)


def test_more_shards_than_workers_with_fragments(cluster: LocalCluster, tmp_path: Path) -> None:
    """--jobs 4 on two workers: four tasks; IPv4 fragments and unknown ports as in --jobs."""
    path = str(write_records(tmp_path / "many.pcap", many_connections()))
    out = _on_cluster(cluster, path, "--json", "--jobs", "4").stdout
    assert out == _local(path, "--json")
    ids = [json.loads(line)["id"] for line in out.splitlines()[:-1]]
    assert sorted(ids) == list(range(1, 19))


def test_console_report_and_filters(cluster: LocalCluster, tmp_path: Path) -> None:
    """Without --json the workers send whole sessions back; --host keeps the global ids."""
    path = str(write_records(tmp_path / "many.pcap", many_connections(8)))
    assert _on_cluster(cluster, path, "--transcript").stdout == _local(path, "--transcript")
    filtered = _on_cluster(cluster, path, "--json", "--host", "192.0.2.25").stdout
    assert filtered == _local(path, "--json", "--host", "192.0.2.25")


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated capture large enough that a shard runs for seconds."""
    out = tmp_path_factory.mktemp("big") / "big.pcap"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "make_capture.py"), str(out)]
        + ["--packets", "40000", "--seed", "7"],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    return out


def test_a_worker_lost_mid_run_changes_nothing(tmp_path: Path, big_capture: Path) -> None:
    """SIGKILL one of two workers while it runs its shard: Dask runs the shard again on the
    other, and the output is the local run's (nothing missing, nothing twice)."""
    expected = _local(str(big_capture), "--json")
    cluster = start_cluster(tmp_path / "dask")
    try:
        victim = cluster.worker_address("w0")
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailsniff", "read", str(big_capture), "--json"]
            + ["--scheduler", cluster.address],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 240
        while not any("-shard-" in str(k) for k in cluster.client.processing().get(victim, ())):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, cluster.log()
            time.sleep(0.05)
        cluster.kill_worker("w0")
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err + cluster.log()
        assert "Traceback" not in err
        assert out == expected
        assert out.count('"type":"session"') > 300
        assert f"worker {victim} was lost while running shard" in err, err
    finally:
        if "proc" in locals() and proc.poll() is None:
            proc.kill()
            proc.wait()
        cluster.stop()


def test_no_dask_import_without_scheduler() -> None:
    capture = str(PCAPS / "cc-bcc-smtplib.pcap")
    proc, dask = run_probed(("dask", "distributed"), "read", capture, "--json")
    assert proc.returncode == 0, proc.stderr
    assert not dask
    assert '"type":"session"' in proc.stdout


def test_unreachable_scheduler_is_one_line_and_status_6() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        proc = run_cli(
            "read", str(PCAPS / "cc-bcc-smtplib.pcap"), "--scheduler", f"tcp://127.0.0.1:{port}"
        )
    assert proc.returncode == 6
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], proc.stderr


def test_what_a_cluster_cannot_do_is_a_usage_or_input_error(tmp_path: Path) -> None:
    capture = str(PCAPS / "cc-bcc-smtplib.pcap")
    proc = run_cli("read", capture, "--extract", str(tmp_path / "x"), "--scheduler", "tcp://h:1")
    assert proc.returncode == 2 and "cannot be combined" in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = run_cli("read", "-", "--scheduler", "tcp://127.0.0.1:1")
    assert proc.returncode == 3 and "not a file" in proc.stderr
    proc = run_cli("read", capture, "--scheduler", "tcp://127.0.0.1:port")
    assert proc.returncode == 2 and "port must be a number" in proc.stderr
