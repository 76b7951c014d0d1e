"""Peak memory of `mailsniff read` on flood captures: half-open scans, many open sessions.

    python benchmarks/flood.py                          # every scenario at its default size
    python benchmarks/flood.py --scenario syn --connections 1000000
    python benchmarks/flood.py --scenario open --connections 100000
    python benchmarks/flood.py --scenario tiny --connections 100000 --console
    python benchmarks/flood.py --targets     # the three targets: syn 1M, open 100k, tiny 1M console

Scenarios (captures written by raw struct packing into benchmarks/out/, kept between runs):

* ``syn``: a port-25 scan, one SYN from a distinct client address/port each (half-open).
* ``open``: mail connections that stay open: handshake, the server's greeting, ``EHLO`` and its
  reply, never closed (all of them open at once at the end of the capture).
* ``tiny``: complete tiny sessions (handshake, greeting, ``QUIT``, ``221``, FIN both ways).

For each run: wall-clock seconds and peak memory. `peak RSS MiB` is the largest single process's
peak (wait4's rusage); `tree RSS` and `tree PSS` are the peaks of the sums over the process and
its `--jobs` workers, sampled from /proc every 0.1 s (RSS counts the pages a forked worker shares
with its parent in each process; PSS divides them among the processes sharing them). The runs
use `--jobs 1` (the whole work in one process) unless told.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
_ETH = b"\x00\x0f\xe2\x8c\x71\x04" + b"\x00\x0c\x29\x5b\x3d\xa1" + b"\x08\x00"
_SYN, _ACK, _PSH, _FIN = 0x02, 0x10, 0x08, 0x01


def _frame(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    """Ethernet + IPv4 + TCP (checksums left zero: mailsniff does not verify them)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    return _ETH + ip + tcp + payload


def _client(i: int) -> tuple[bytes, int]:
    return struct.pack("!I", 0x0A000000 + (i // 50000)), 10000 + i % 50000


SERVER = bytes([192, 0, 2, 25])


class _Conn:
    """Sequence numbers of one client-server connection, advanced as its frames are built."""

    def __init__(self, i: int) -> None:
        self.ip, self.port = _client(i)
        self.cs, self.ss = (i * 7919) & 0xFFFFFFFF, (i * 104729 + 5) & 0xFFFFFFFF

    def c(self, flags: int, data: bytes = b"") -> bytes:
        f = _frame(self.ip, SERVER, self.port, 25, self.cs, self.ss, flags, data)
        self.cs = (self.cs + len(data) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF
        return f

    def s(self, flags: int, data: bytes = b"") -> bytes:
        f = _frame(SERVER, self.ip, 25, self.port, self.ss, self.cs, flags, data)
        self.ss = (self.ss + len(data) + (1 if flags & (_SYN | _FIN) else 0)) & 0xFFFFFFFF
        return f


def _sessions(scenario: str, n: int) -> Iterator[bytes]:
    greeting = b"220 mx.example.com ESMTP\r\n"
    for i in range(n):
        conn = _Conn(i)
        yield conn.c(_SYN)
        if scenario == "syn":
            continue
        yield conn.s(_SYN | _ACK)
        yield conn.c(_ACK)
        yield conn.s(_PSH | _ACK, greeting)
        if scenario == "open":
            yield conn.c(_PSH | _ACK, b"EHLO client.example.org\r\n")
            yield conn.s(_PSH | _ACK, b"250 mx.example.com\r\n")
            continue
        yield conn.c(_PSH | _ACK, b"QUIT\r\n")
        yield conn.s(_PSH | _ACK | _FIN, b"221 bye\r\n")
        yield conn.c(_FIN | _ACK)
        yield conn.s(_ACK)


def write(path: Path, scenario: str, n: int) -> None:
    t0 = 1_767_225_600
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        batch: list[bytes] = []
        for k, frame in enumerate(_sessions(scenario, n)):
            batch.append(
                struct.pack("<IIII", t0 + k // 100_000, k % 100_000 * 10, len(frame), len(frame))
            )
            batch.append(frame)
            if len(batch) > 20000:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += _tree(int(child))
    except OSError:
        pass
    return out


def _kib(path: str, name: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(argv: list[str]) -> tuple[float, float, float, float]:
    """Run argv with output discarded; (seconds, peak RSS MiB of the largest process, peak RSS
    and PSS MiB summed over its process tree)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=HERE.parent
    )
    tree_rss = tree_pss = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        pids = _tree(proc.pid)
        tree_rss = max(tree_rss, sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids))
        tree_pss = max(tree_pss, sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        sys.exit(f"{argv} failed ({code}): {err.strip()[:500]}")
    return elapsed, usage.ru_maxrss / 1024, tree_rss / 1024, tree_pss / 1024


DEFAULTS = {"syn": 1_000_000, "open": 100_000, "tiny": 100_000}
#: The bounded-memory targets: (scenario, connections, console view), each under 256 MiB.
TARGETS = [("syn", 1_000_000, False), ("open", 100_000, False), ("tiny", 1_000_000, True)]
TARGET_MIB = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(DEFAULTS), action="append")
    parser.add_argument("--connections", type=int, help="default: 1M syn, 100k open/tiny")
    parser.add_argument("--console", action="store_true", help="console output, not --json")
    parser.add_argument(
        "--targets", action="store_true", help=f"the three targets, each against {TARGET_MIB} MiB"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mailsniff's --jobs (default 1: one process; 0: mailsniff's own default by size)",
    )
    args = parser.parse_args()
    # `python -m mailsniff` run in this tree: the code beside this script is measured (an
    # installed `mailsniff` may be another checkout's).
    cmd = [sys.executable, "-m", "mailsniff"]
    OUT.mkdir(exist_ok=True)
    runs = (
        TARGETS
        if args.targets
        else [
            (scenario, args.connections or DEFAULTS[scenario], args.console)
            for scenario in args.scenario or sorted(DEFAULTS)
        ]
    )
    print(
        "| scenario | connections | output | seconds | peak RSS MiB | tree RSS | tree PSS |"
        + (" target |" * args.targets)
    )
    print("|---|---|---|---|---|---|---|" + ("---|" * args.targets))
    for scenario, n, console in runs:
        path = OUT / f"flood-{scenario}-{n}.pcap"
        if not path.exists():
            write(path, scenario, n)
        argv = [*cmd, "read", str(path)] + (["--jobs", str(args.jobs)] if args.jobs else [])
        argv.append("--summary" if console else "--json")
        seconds, rss, tree_rss, tree_pss = measure(argv)
        mode = ("console --summary" if console else "--json") + (
            f", --jobs {args.jobs}" if args.jobs else ", default --jobs"
        )
        verdict = ""
        if args.targets:  # judged on the whole tree's resident memory
            verdict = f" < {TARGET_MIB}: {'met' if tree_rss < TARGET_MIB else 'NOT met'} |"
        print(
            f"| {scenario} | {n:,} | {mode} | {seconds:.1f} | {rss:.0f} | {tree_rss:.0f} "
            f"| {tree_pss:.0f} |{verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
