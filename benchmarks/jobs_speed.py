"""CPU seconds of `read --json` in one process and in N worker processes, per process.

    python benchmarks/jobs_speed.py benchmarks/out/bench-125000-s1.pcap --jobs 1 2 4

On a busy machine wall-clock time says little about what --jobs gains (the workers wait for a
core); the CPU time each process used does. For --jobs N, as `read` runs it, the parent runs
shard 0 and merges (its CPU time is that shard's, merging included) and N - 1 forked workers run
the others. The run takes at least as long as its busiest process's CPU time, and on N idle
cores about that long: the "critical path" column, and the speedup it implies against one
process. Wall-clock seconds are printed too.
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

from mailsniff.analysis.summary import Summary
from mailsniff.capture.multi import expand_inputs, open_inputs
from mailsniff.commands.read import _frames, _open_frames
from mailsniff.model import Session
from mailsniff.parallel import drive, run_sharded
from mailsniff.pipeline import Pipeline, SessionFilter
from mailsniff.render import jsonl


def render(session: Session) -> tuple[str, Summary]:
    return jsonl.dumps(jsonl.session_record(session)), Summary.of([session])


def one_process(paths: list[str]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), sum(os.times()[:2])
    with open_inputs(paths) as reader:
        drive(Pipeline(), _frames(reader, None, None, None), render)
    return time.perf_counter() - wall, sum(os.times()[:2]) - cpu


def workers(paths: list[str], n: int) -> tuple[float, float, list[float]]:
    # What `read --jobs N` opens in each worker (routed from raw bytes, as without -f).
    open_frames = partial(_open_frames, paths, SessionFilter())
    wall, cpu = time.perf_counter(), sum(os.times()[:2])
    shards: list[float] = []
    for item in run_sharded(n, open_frames, Pipeline, render, local=True):
        if isinstance(item, list):
            shards = [r.cpu_seconds for r in item]
    return time.perf_counter() - wall, sum(os.times()[:2]) - cpu, shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="+")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    paths = expand_inputs(args.captures)
    print("| jobs | wall s | parent CPU s | worker CPU s | critical path s | speedup |")
    print("|---|---|---|---|---|---|")
    base = None
    for n in args.jobs:
        if n == 1:
            wall, cpu = one_process(paths)
            base = cpu
            print(f"| 1 (one process) | {wall:.2f} | {cpu:.2f} | - | {cpu:.2f} | 1.00 |")
            continue
        wall, parent, shards = workers(paths, n)
        path = max(max(shards), parent)
        speedup = f"{base / path:.2f}" if base else "-"
        each = " + ".join(f"{c:.2f}" for c in shards)
        print(f"| {n} | {wall:.2f} | {parent:.2f} | {each} | {path:.2f} | {speedup} |", flush=True)


if __name__ == "__main__":
    main()
