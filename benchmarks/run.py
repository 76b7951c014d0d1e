"""Measure `mailsniff read --json` against tshark on generated captures of growing size.

    python benchmarks/run.py                       # 125k, 250k, 500k, 1M, 2M packets
    python benchmarks/run.py --packets 500000 --repeat 3
    python benchmarks/run.py --no-tshark           # mailsniff only
    python benchmarks/run.py --packets 125000 --repeat 3 --pure
                                                   # compiled, pure (MAILSNIFF_PURE=1), tshark
    python benchmarks/run.py --packets 125000 --jobs 1 2 --rotate 100 --no-tshark
                                                   # --jobs 1 against 2; 100 rotated files

--jobs runs mailsniff once per value; --rotate N also reads the capture split into N files
(make_capture.py --rotate, tcpdump -C style) and checks that its JSON equals the single file's.

Captures are written by benchmarks/make_capture.py into benchmarks/out/ (kept between runs).
For each capture and tool: wall-clock seconds (best of --repeat), packets per second, CPU
seconds (user + system, best of --repeat), and the child's peak resident memory (from wait4's
rusage, so each figure is that one process's own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

TSHARK_FIELDS = [
    "frame.number",
    "smtp.req.command",
    "smtp.req.parameter",
    "smtp.response.code",
    "smtp.auth.username",
    "smtp.auth.password",
    "pop.request.command",
    "pop.request.parameter",
    "pop.response.indicator",
    "imf.from",
    "imf.to",
    "imf.cc",
    "imf.subject",
]


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Run argv with stdout discarded: (wall seconds, CPU seconds, peak RSS KiB) of that child.

    CPU seconds (user + system, from wait4's rusage, the child and the workers it waited for)
    say more than wall-clock time on a machine shared with other work."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0,):
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {stderr.strip()[:500]}")
    return elapsed, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


def capture(packets: int, seed: int, rotate: int | None = None) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"bench-{packets}-s{seed}.pcap"
    rotated = path.with_name(path.name + ".rotated")
    if rotate is not None and (not rotated.exists() or len(list(rotated.iterdir())) != rotate):
        path.unlink(missing_ok=True)
    if not path.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_capture.py"),
                str(path),
                "--packets",
                str(packets),
                "--seed",
                str(seed),
                *(["--rotate", str(rotate)] if rotate is not None else []),
            ],
            check=True,
        )
    return path


def _output(argv: list[str], env: dict[str, str] | None = None) -> bytes:
    return subprocess.run(
        argv, capture_output=True, check=True, env={**os.environ, **(env or {})}
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--packets", type=int, nargs="*", default=[125_000, 250_000, 500_000, 1_000_000, 2_000_000]
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--jobs", type=int, nargs="*", default=[1], help="mailsniff --jobs values")
    parser.add_argument("--rotate", type=int, metavar="N", help="also read N rotated files")
    parser.add_argument(
        "--pure",
        action="store_true",
        help="also run mailsniff with MAILSNIFF_PURE=1 (the pure-Python modules of the same "
        "install) beside the compiled build, and check both outputs are identical",
    )
    args = parser.parse_args()

    mailsniff = shutil.which("mailsniff") or sys.exit("mailsniff is not installed (pip install .)")
    # Measure what a user runs: with PYTHONDONTWRITEBYTECODE set (some CI images and sandboxes
    # set it) an editable install compiles every interpreted module from source on every run,
    # about 0.1 s of each start-up. The `--version` call below writes the bytecode once.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    tshark = None if args.no_tshark else shutil.which("tshark")
    if not args.no_tshark and tshark is None:
        sys.exit("tshark not found (apt-get install tshark), or pass --no-tshark")

    build = subprocess.run([mailsniff, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {build}")
    print(f"load average before the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = "| packets | file MiB | tool | seconds | packets/s | CPU s | peak RSS MiB |"
    print(header)
    print("|" + "---|" * 7)
    for n in args.packets:
        path = capture(n, args.seed, args.rotate)
        size = path.stat().st_size / 2**20
        pure = {"MAILSNIFF_PURE": "1"}
        runs: list[tuple[str, list[str], dict[str, str] | None]] = [
            (
                f"mailsniff --jobs {j}",
                [mailsniff, "read", str(path), "--json", "--jobs", str(j)],
                None,
            )
            for j in args.jobs
        ]
        if args.pure:
            runs += [(f"{name}, pure Python", argv, pure) for name, argv, _ in runs]
            same = _output(runs[0][1]) == _output(runs[0][1], pure)
            print(f"pure-Python output equals the default build's: {same}")
        if args.rotate is not None:
            rotated = path.with_name(path.name + ".rotated")
            runs += [
                (
                    f"mailsniff --jobs {j}, {args.rotate} files",
                    [mailsniff, "read", str(rotated), "--json", "--jobs", str(j)],
                    None,
                )
                for j in args.jobs
            ]
            single = _output([mailsniff, "read", str(path), "--json", "--jobs", "1"])
            for j in args.jobs:
                same = _output(runs[-len(args.jobs) + args.jobs.index(j)][1]) == single
                print(
                    f"{args.rotate} rotated files, --jobs {j}: "
                    f"output equals the single file's: {same}"
                )
        if tshark:
            fields = [x for f in TSHARK_FIELDS for x in ("-e", f)]
            runs.append(
                (
                    "tshark",
                    [tshark, "-r", str(path), "-Y", "smtp || pop || imf", "-T", "fields", *fields],
                    None,
                )
            )
        for name, argv, env in runs:
            best_t, best_cpu, best_rss = float("inf"), float("inf"), 0
            for _ in range(args.repeat):
                t, cpu, rss = measure(argv, env)
                best_cpu = min(best_cpu, cpu)
                if t < best_t:
                    best_t, best_rss = t, rss
            print(
                f"| {n:,} | {size:.1f} | {name} | {best_t:.2f} | {n / best_t:,.0f} | "
                f"{best_cpu:.2f} | {best_rss / 1024:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
