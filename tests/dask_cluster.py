"""A real Dask cluster on loopback for the tests: `dask scheduler` and `dask worker` processes.

Each process runs in its own session (its own process group) on ports of its own, with this
checkout first on PYTHONPATH so the workers run the mailsniff under test; stop() ends them
(SIGTERM, then SIGKILL) and kill_worker() kills one the way a machine is lost (SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.paths import REPO

__all__ = ["LocalCluster", "start_cluster"]

_DASK = [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalCluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    client: Any = None  # a distributed.Client of the test itself (watching the scheduler)

    def add_worker(self, name: str) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.workers.append(
            subprocess.Popen(
                [
                    *_DASK,
                    "worker",
                    self.address,
                    "--name",
                    name,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--local-directory",
                    str(self.folder / name),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                start_new_session=True,
            )
        )

    def worker_address(self, name: str) -> str:
        for address, info in self.client.scheduler_info(n_workers=-1)["workers"].items():
            if info.get("name") == name:
                return str(address)
        raise KeyError(name)

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker called `name` (it gets no chance to hand anything over)."""
        index = int(name.removeprefix("w"))
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait(30)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        procs = [*self.workers, self.scheduler]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def log(self) -> str:
        return "\n".join(
            f"== {p.name}\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted(self.folder.glob("*.log"))
        )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def start_cluster(folder: Path, workers: int = 2) -> LocalCluster:
    """A scheduler and `workers` single-threaded workers (w0, w1, ...), all registered."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = (folder / "scheduler.log").open("wb")
    scheduler = subprocess.Popen(
        [*_DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        start_new_session=True,
    )
    cluster = LocalCluster(address=f"tcp://127.0.0.1:{port}", folder=folder, scheduler=scheduler)
    try:
        for i in range(workers):
            cluster.add_worker(f"w{i}")
        cluster.client = Client(cluster.address, timeout=120, set_as_default=False)
        cluster.client.wait_for_workers(workers, timeout=180)
    except BaseException:
        cluster.stop()
        raise
    return cluster
