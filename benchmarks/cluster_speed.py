"""`read --json` on a Dask cluster of 1, 2, ... local worker processes, against one process.

    PYTHONPATH=. python benchmarks/cluster_speed.py benchmarks/out/bench-125000-s1.pcap

Measures, on this machine:
- one process (what `read --jobs 1` does): wall and CPU seconds, T1;
- the read cost R: CPU seconds of a shard that keeps no connection (reads every record, routes
  every frame by its raw header, decodes only what cannot be routed raw): every shard pays it;
- each of N shards' own CPU seconds and the size of its result as pickled for the network
  (what a worker sends back), beside the size of the JSON output it becomes;
- the run on a `distributed.LocalCluster` of W single-threaded worker processes (real TCP on
  loopback, a scheduler, the client merging): wall seconds, each shard's CPU seconds.

Then the model for W workers, W shards: wall(W) ~ R + (T1 - R) / W + overhead, with the overhead
(connect, submit, fetch and merge) measured at W = 1. It prints markdown tables.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import time
from functools import partial
from typing import Any

from mailsniff.capture.multi import expand_inputs, open_inputs
from mailsniff.cluster import ClusterRun, run_shard
from mailsniff.parallel import drive
from mailsniff.pipeline import Pipeline, SessionFilter
from mailsniff.reading import RenderedSession, _frames, _open_frames, _prepare, _worker_pipeline


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
    make = partial(_worker_pipeline, SessionFilter(), False)
    prepare = partial(_prepare, False, False)
    c = cpu()
    _version, messages = run_shard(me, n, partial(_open_frames, paths), make, prepare)
    spent = cpu() - c
    size = len(pickle.dumps(messages, protocol=5))
    json_bytes = 0
    for message in messages:
        if message[0] == "batch":
            for _tag, rendered in message[3]:
                assert isinstance(rendered, RenderedSession)
                json_bytes += len(rendered.head) + len(rendered.tail) + 6
    return spent, size, json_bytes


def on_cluster(paths: list[str], workers: int) -> tuple[float, list[float], list[str]]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        run = ClusterRun(client, workers, paths)
        make = partial(_worker_pipeline, SessionFilter(), False)
        prepare = partial(_prepare, False, False)
        wall = time.perf_counter()
        shards: list[float] = []
        for item in run.sharded(partial(_open_frames, run.absolute()), make, prepare):
            if isinstance(item, list):
                shards = [r.cpu_seconds for r in item]
        return time.perf_counter() - wall, shards, run.notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="+")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=int, nargs="+", default=[4, 8, 16, 32])
    args = parser.parse_args()
    paths = [os.path.abspath(p) for p in expand_inputs(args.captures)]
    size = sum(os.path.getsize(p) for p in paths)
    print(f"input: {len(paths)} file(s), {size / 1e6:.1f} MB; load average {os.getloadavg()}")

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

    print("\n| workers (= shards) | wall s | shard CPU s | speedup vs one process (wall) |")
    print("|---|---|---|---|")
    overhead = None
    for w in args.workers:
        wall, shards, notes = on_cluster(paths, w)
        each = " + ".join(f"{s:.2f}" for s in shards)
        print(f"| {w} | {wall:.2f} | {each} | {wall1 / wall:.2f} |", flush=True)
        for note in notes:
            print("note:", note)
        if w == 1:
            overhead = max(0.0, wall - wall1)

    print("\nModel (not measured): wall(W) = R + (T1 - R) / W + overhead")
    extra = overhead or 0.0
    print(f"with T1 = {t1:.2f} s CPU, R = {read:.2f} s, overhead = {extra:.2f} s (W = 1 run)")
    print("| workers | modelled wall s | speedup |")
    print("|---|---|---|")
    for w in [*args.workers, *args.model]:
        modelled = read + (t1 - read) / w + extra
        print(f"| {w} | {modelled:.2f} | {t1 / modelled:.2f} |")
    print(f"limit (W -> infinity): {t1 / (read + extra):.2f}x")


if __name__ == "__main__":
    main()
