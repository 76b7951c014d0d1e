"""Does `mailsniff live` keep up? The benchmark capture replayed with tcpreplay, watched live.

    python benchmarks/live_replay.py                         # 40k, 70k, 100k packets/s
    python benchmarks/live_replay.py --pps 100000 --jobs 2 -B 256M
    python benchmarks/live_replay.py --pps 0                 # as fast as tcpreplay can
    python benchmarks/live_replay.py --tcpdump               # tcpdump -B 65536 -w's drops too

Needs root, tcpreplay and iproute2. Everything runs in a network namespace of its own (created,
and removed at the end), on that namespace's `lo`: a replay at 100k packets/s never reaches the
machine's own loopback. For each rate: `mailsniff live -i lo --json` is started in the
namespace and waits for its ready line, `tcpreplay --pps RATE` sends the capture, then live is
stopped with SIGINT once the replay is over and it catches up. Printed per rate: the rate
tcpreplay reached, packets captured, dropped by the kernel, dropped by mailsniff, the largest
backlog analysis had (spooled, not lost), seconds from the end of the replay to live's last
line, sessions, and whether the sessions equal `mailsniff read --json` of the same capture
(every field but the capture timestamps, which are the replay's).

The capture is benchmarks/out/bench-125000-s1.pcap, written by make_capture.py when missing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
REPO = HERE.parent
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def normalise(value: Any) -> Any:
    """A record without its capture times (and the uid and duration derived from them)."""
    if isinstance(value, dict):
        return {
            k: normalise(v)
            for k, v in value.items()
            if k not in ("uid", "duration") and not (isinstance(v, str) and _ISO.match(v))
        }
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def sessions_of(lines: list[str]) -> tuple[dict[int, Any], dict[str, Any]]:
    sessions: dict[int, Any] = {}
    summary: dict[str, Any] = {}
    for line in lines:
        record = json.loads(line)
        if record["type"] == "session":
            sessions[record["id"]] = normalise(record)
        elif record["type"] == "summary":
            summary = record
    return sessions, summary


def ns(name: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


def replay(args: argparse.Namespace, capture: Path, pps: int, expected: dict[int, Any]) -> None:
    python = sys.executable
    cmd = [python, "-m", "mailsniff", "live", "-i", "lo", "--json"]
    if args.buffer_size:
        cmd += ["-B", args.buffer_size]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(ns(args.netns, *cmd), cwd=REPO, stdout=out, stderr=err)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            err.seek(0)
            if "capturing on" in err.read():
                break
            time.sleep(0.1)
        else:
            proc.kill()
            sys.exit("mailsniff live did not start")
        tcpdump = None
        dump_err = ""
        if args.tcpdump:
            tcpdump = subprocess.Popen(
                ns(args.netns, "tcpdump", "-i", "lo", "-B", str(args.tcpdump_buffer), "-w")
                + ["/dev/null", "-n", "tcp"],
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)
        started = time.monotonic()
        result = subprocess.run(
            ns(args.netns, "tcpreplay", "-i", "lo", "-K")
            + [f"--pps={pps}" if pps else "--topspeed", str(capture)],
            capture_output=True,
            text=True,
            check=True,
        )
        replayed = time.monotonic()
        rate = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", result.stdout)
        if tcpdump is not None:
            time.sleep(0.5)
            tcpdump.send_signal(signal.SIGINT)
            dump_err = tcpdump.communicate()[1]
        # Wait until live has analysed everything it captured: its output stops growing.
        size, still = -1, 0
        while still < 3:
            time.sleep(0.5)
            now = out.seek(0, 2)
            still = still + 1 if now == size else 0
            size = now
        caught_up = time.monotonic() - 1.5
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=600)
        out.seek(0)
        sessions, summary = sessions_of(out.read().splitlines())
    live = summary.get("live", {})
    same = sessions == expected
    differing = sum(
        1 for k in expected.keys() | sessions.keys() if sessions.get(k) != expected.get(k)
    )
    dump_drops = ""
    if args.tcpdump:
        match = re.search(r"(\d+) packets dropped by kernel", dump_err)
        dump_drops = f" | {match.group(1) if match else '?'}"
    asked = f"{pps:,}" if pps else "top speed"
    print(
        f"| {asked} | {float(rate.group(1)) if rate else 0:,.0f} | {replayed - started:.1f} "
        f"| {live.get('captured', 0):,} | {live.get('kernel_dropped')} "
        f"| {live.get('mailsniff_dropped')} | {live.get('spill_peak', 0) / 2**20:.1f} "
        f"| {max(0.0, caught_up - replayed):.1f} | {summary.get('sessions')} "
        f"| {summary.get('incomplete_sessions')} | {'yes' if same else f'no ({differing} differ)'}"
        f"{dump_drops} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, default=OUT / "bench-125000-s1.pcap")
    parser.add_argument(
        "--pps", type=int, nargs="+", default=[40_000, 70_000, 100_000], help="0: --topspeed"
    )
    parser.add_argument("-B", "--buffer-size", help="live's -B (default: live's own)")
    parser.add_argument("--jobs", type=int, help="live's --jobs")
    parser.add_argument("--netns", default="msbench")
    parser.add_argument("--tcpdump", action="store_true", help="tcpdump -w /dev/null alongside")
    parser.add_argument(
        "--tcpdump-buffer", type=int, default=65536, help="tcpdump's -B, KiB (default: 64 MiB)"
    )
    args = parser.parse_args()
    for tool in ("tcpreplay", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (Debian: apt-get install tcpreplay iproute2)")
    if not args.capture.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_capture.py"),
                str(args.capture),
                "--packets",
                "125000",
            ],
            check=True,
        )
    read = subprocess.run(
        [sys.executable, "-m", "mailsniff", "read", str(args.capture), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    expected, read_summary = sessions_of(read.stdout.splitlines())
    print(f"read: {read_summary['sessions']} sessions, {read_summary['frames']:,} frames")
    created = (
        subprocess.run(["ip", "netns", "add", args.netns], capture_output=True).returncode == 0
    )
    try:
        subprocess.run(ns(args.netns, "ip", "link", "set", "lo", "up"), check=True)
        print(
            "| pps asked | pps reached | replay s | captured | kernel dropped | mailsniff dropped "
            "| backlog peak MiB | catch-up s | sessions | incomplete | equals read |"
            + (" tcpdump dropped |" if args.tcpdump else "")
        )
        print("|---" * (11 + bool(args.tcpdump)) + "|")
        for pps in args.pps:
            replay(args, args.capture, pps, expected)
    finally:
        if created:
            subprocess.run(["ip", "netns", "del", args.netns], check=False)


if __name__ == "__main__":
    main()
