"""`read --json` on a Dask cluster of 1, 2, ... local worker processes, against one process.

    PYTHONPATH=. python benchmarks/cluster_speed.py benchmarks/out/bench-125000-s1.pcap

Measures, on this machine:
- one process (what `read --jobs 1` does): wall and CPU seconds, T1;
- the read cost R: CPU seconds of a shard that keeps no connection (reads every record, routes
  every frame by its raw header, decodes only what cannot be routed raw): every shard pays it;
- each of N shards' own CPU seconds and the size of its result as pickled for the network
  (what a worker sends back), beside the size of the JSON output it becomes;
- the run on a cluster of a `dask scheduler` and W single-threaded `dask worker` processes on
  loopback (tests/dask_cluster.py), this process the client: wall seconds, the client's CPU
  seconds (fetching and merging), each shard's CPU seconds on its worker.

Then a model for W workers and W shards on idle cores: the busiest shard plus the client,
R + (S1 - R) / W + C. It prints markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from mailsniff.capture.multi import expand_inputs, open_inputs
from mailsniff.cluster import ClusterRun, run_shard
from mailsniff.commands.read import (
    RenderedSession,
    _frames,
    _open_frames,
    _prepare,
    _worker_pipeline,
)
from mailsniff.parallel import drive
from mailsniff.pipeline import Pipeline, SessionFilter


def cpu() -> float:
    return sum(os.times()[:2])


def one_process(paths: list[str]) -> tuple[float, float, int]:
    out = [0]

    def emit(session: Any) -> None:
        rendered = _prepare(False, False, session)
        out[0] += len(rendered.head) + len(rendered.tail) + 6

    wall, c = time.perf_counter(), cpu()
    with open_inputs(paths) as reader:
        drive(Pipeline(), _frames(reader, None, None, None), emit)
    return time.perf_counter() - wall, cpu() - c, out[0]


def local_shard(paths: list[str], me: int, n: int) -> tuple[float, int, int]:
    """CPU seconds, pickled result bytes, JSON bytes of shard `me` of `n`, in this process."""
    make = partial(_worker_pipeline, SessionFilter(), False, None)
    prepare = partial(_prepare, False, False)
    c = cpu()
    _version, messages = run_shard(
        me, n, partial(_open_frames, paths, SessionFilter()), make, prepare
    )
    spent = cpu() - c
    size = len(pickle.dumps(messages, protocol=5))
    json_bytes = 0
    for message in messages:
        if message[0] == "batch":
            for _tag, rendered in message[3]:
                assert isinstance(rendered, RenderedSession)
                json_bytes += len(rendered.head) + len(rendered.tail) + 6
    return spent, size, json_bytes


def on_cluster(paths: list[str], workers: int) -> tuple[float, float, list[float], list[str]]:
    """A `dask scheduler` and `workers` single-threaded `dask worker` processes on loopback
    (as the tests start them); the client is this process."""
    from tests.dask_cluster import start_cluster

    with tempfile.TemporaryDirectory() as folder:
        cluster = start_cluster(Path(folder), workers)
        try:
            run = ClusterRun(cluster.client, workers, paths)
            make = partial(_worker_pipeline, SessionFilter(), False, None)
            prepare = partial(_prepare, False, False)
            wall, c = time.perf_counter(), cpu()
            shards: list[float] = []
            for item in run.sharded(
                partial(_open_frames, run.absolute(), SessionFilter()), make, prepare
            ):
                if isinstance(item, list):
                    shards = [r.cpu_seconds for r in item]
            return time.perf_counter() - wall, cpu() - c, shards, run.notes
        finally:
            cluster.stop()


def cluster_runs(paths: list[str], workers: list[int]) -> tuple[float, float]:
    """The runs on W workers: prints the table; returns (one-shard CPU, largest client CPU)."""
    print("\n| workers (= shards) | wall s | client CPU s | shard CPU s | critical path s |")
    print("|---|---|---|---|---|")
    single = client = 0.0
    for w in workers:
        wall, client_cpu, shards, notes = on_cluster(paths, w)
        each = " + ".join(f"{s:.2f}" for s in shards)
        path = max(shards) + client_cpu
        print(f"| {w} | {wall:.2f} | {client_cpu:.2f} | {each} | {path:.2f} |", flush=True)
        for note in notes:
            print("note:", note)
        if w == 1:
            single = shards[0]
        client = max(client, client_cpu)
    return single, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="+")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--cluster-only", action="store_true", help="only the cluster runs")
    args = parser.parse_args()
    paths = [os.path.abspath(p) for p in expand_inputs(args.captures)]
    size = sum(os.path.getsize(p) for p in paths)
    print(f"input: {len(paths)} file(s), {size / 1e6:.1f} MB; load average {os.getloadavg()}")

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    import distributed  # noqa: F401 - imported before anything is timed

    if args.cluster_only:
        cluster_runs(paths, args.workers)
        return
    wall1, t1, json_bytes = one_process(paths)
    print(f"one process: wall {wall1:.2f} s, CPU {t1:.2f} s (T1), JSON output {json_bytes} bytes")
    read, _, _ = local_shard(paths, 1, 1)  # shard 1 of 1 never owns a connection
    print(f"read cost R (a shard that keeps nothing): CPU {read:.2f} s ({read / t1:.0%} of T1)")

    print("\n| shards | shard | CPU s | result pickled bytes | its JSON bytes | ratio |")
    print("|---|---|---|---|---|---|")
    for n in sorted({max(2, w) for w in args.workers}):
        for me in range(n):
            spent, pickled, js = local_shard(paths, me, n)
            ratio = f"{pickled / js:.2f}" if js else "-"
            print(f"| {n} | {me + 1} | {spent:.2f} | {pickled} | {js} | {ratio} |", flush=True)

    single, client = cluster_runs(paths, args.workers)
    # On idle cores a run takes about its busiest shard's CPU time plus the client's (which
    # fetches and writes while the last parts arrive): the critical path.
    print("\nModel (not measured): critical path(W) = R + (S1 - R) / W + C")
    print(f"S1 = {single:.2f} s (the one-shard run's CPU on its Dask worker), R = {read:.2f} s,")
    print(f"C = {client:.2f} s (the client CPU, largest measured); one process T1 = {t1:.2f} s")
    print("| workers | modelled s | speedup vs one process |")
    print("|---|---|---|")
    for w in [*args.workers, *args.model]:
        modelled = read + (single - read) / w + client
        print(f"| {w} | {modelled:.2f} | {t1 / modelled:.2f} |")
    print(f"limit (W -> infinity): {t1 / (read + client):.2f}x")


if __name__ == "__main__":
    main()
