"""How big a `mailsniff report` gets and how fast headless Chromium opens it.

    python benchmarks/report_size.py                  # 10,000 sessions
    python benchmarks/report_size.py --sessions 2000 --keep out/
    python benchmarks/report_size.py --report out/report.html --loads 5   # load an existing one

Writes a capture of N mail sessions (70% SMTP submission: AUTH LOGIN, a refused first try in one
of ten, one message of 1-3 To, 0-2 Cc and 0-1 Bcc recipients with a small attachment, one in
twenty refused after DATA; 30% POP3: USER/PASS, STAT, RETR, DELE), from 400 clients to 30
servers among 1,200 addresses (so the graph is capped and the timeline has many lanes), runs
`mailsniff report` on it, and prints the report's size and the time headless Chromium (Debian
`chromium`, driven by Playwright) takes to load it: the wall time from navigation to the `load`
event, for each of --loads fresh pages (the browser started beforehand), with the machine's load
average, and the Chromium CPU seconds. Targets: under 20 MB, under 3 s (the median wall time).
A benchmark, not a test: figures go in docs/report.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_capture import Side, TcpFlow, write_pcap  # noqa: E402

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_US = 1_767_225_600 * 1_000_000  # 2026-01-01T00:00:00Z


class Sessions:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        self.clients = [
            bytes([10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)])
            for _ in range(400)
        ]
        self.servers = [bytes([203, 0, 113, n]) for n in range(1, 31)]
        self.addresses = [
            f"user{n}@{rng.choice(['example.com', 'example.net', 'corp.example'])}"
            for n in range(1200)
        ]

    def _flow(self, port: int) -> TcpFlow:
        rng = self.rng
        client = Side(
            bytes([2, 0, 0, 0, 0, 1]),
            rng.choice(self.clients),
            rng.randrange(1024, 65536),
            rng.getrandbits(32),
            64,
            64240,
            1,
        )
        server = Side(
            bytes([2, 0, 0, 0, 0, 2]),
            rng.choice(self.servers),
            port,
            rng.getrandbits(32),
            56,
            65160,
            1,
        )
        flow = TcpFlow(client, server, rtt_us=rng.randrange(300, 20_000))
        flow.handshake()
        return flow

    def _message(self, sender: str, to: list[str], cc: list[str], n: int) -> bytes:
        attachment = base64.encodebytes(self.rng.randbytes(900)).replace(b"\n", b"\r\n")
        head = (
            f"From: Sender {n} <{sender}>\r\nTo: {', '.join(to)}\r\n"
            + (f"Cc: {', '.join(cc)}\r\n" if cc else "")
            + f"Subject: =?UTF-8?B?{base64.b64encode(f'报告 {n}'.encode()).decode()}?=\r\n"
            f"Message-ID: <{n}@bench.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, the figures.\r\n"
            f"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
            f'filename="r{n}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        ).encode()
        return head + attachment + b"--b--\r\n"

    def smtp(self, n: int) -> TcpFlow:
        rng = self.rng
        flow = self._flow(587)
        flow.send(False, b"220 mx.bench.example ESMTP\r\n", flow.rtt_us + 500)
        flow.ack(True)
        flow.exchange(b"EHLO client.example\r\n", b"250-mx\r\n250 AUTH LOGIN PLAIN\r\n", 2000)
        sender = rng.choice(self.addresses)
        tries = [b"wrong", b"secret"] if rng.random() < 0.1 else [b"secret"]
        for i, password in enumerate(tries):
            flow.exchange(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n", 1000)
            flow.exchange(base64.b64encode(sender.encode()) + b"\r\n", b"334 UGFzc3dvcmQ6\r\n", 800)
            ok = i == len(tries) - 1
            reply = b"235 2.7.0 ok\r\n" if ok else b"535 5.7.8 authentication failed\r\n"
            flow.exchange(base64.b64encode(password) + b"\r\n", reply, 800)
        to = rng.sample(self.addresses, rng.randint(1, 3))
        cc = rng.sample(self.addresses, rng.randint(0, 2))
        bcc = rng.sample(self.addresses, rng.randint(0, 1))
        message = self._message(sender, to, cc, n)
        flow.exchange(f"MAIL FROM:<{sender}>\r\n".encode(), b"250 2.1.0 Ok\r\n", 500)
        for rcpt in to + cc + bcc:
            flow.exchange(f"RCPT TO:<{rcpt}>\r\n".encode(), b"250 2.1.5 Ok\r\n", 300)
        flow.exchange(b"DATA\r\n", b"354 go ahead\r\n", 300)
        flow.send(True, message + b".\r\n", 200)
        refused = rng.random() < 0.05
        reply = b"554 5.7.1 rejected: spam\r\n" if refused else b"250 2.0.0 Ok: queued\r\n"
        flow.send(False, reply, flow.rtt_us + 2000)
        flow.ack(True)
        flow.exchange(b"QUIT\r\n", b"221 2.0.0 Bye\r\n", 500)
        flow.close(client_first=False)
        return flow

    def pop3(self, n: int) -> TcpFlow:
        rng = self.rng
        flow = self._flow(110)
        user = rng.choice(self.addresses)
        flow.send(False, b"+OK POP3 ready\r\n", flow.rtt_us + 500)
        flow.ack(True)
        flow.exchange(f"USER {user}\r\n".encode(), b"+OK\r\n", 1000)
        flow.exchange(b"PASS secret\r\n", b"+OK logged in\r\n", 1000)
        flow.exchange(b"STAT\r\n", b"+OK 1 1200\r\n", 500)
        message = self._message(rng.choice(self.addresses), [user], [], n)
        flow.exchange(b"RETR 1\r\n", b"+OK\r\n" + message + b".\r\n", 500)
        flow.exchange(b"DELE 1\r\n", b"+OK\r\n", 500)
        flow.exchange(b"QUIT\r\n", b"+OK bye\r\n", 500)
        flow.close(client_first=False)
        return flow


def records(count: int, seed: int) -> Iterator[tuple[int, bytes]]:
    maker = Sessions(seed)
    now = START_US
    for n in range(count):
        flow = maker.smtp(n) if maker.rng.random() < 0.7 else maker.pop3(n)
        t = now
        for delay, frame in flow.steps:
            t += delay
            yield t, frame
        now += maker.rng.randrange(200_000, 3_000_000)  # sessions start 0.2-3 s apart


def _chromium_cpu() -> float:
    """CPU seconds (user + system) used so far by every running Chromium process."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)
            if "chrom" not in fields[0].split("(", 1)[1]:
                continue
            rest = fields[1].split()
            total += int(rest[11]) + int(rest[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / tick


def load_time(path: Path) -> tuple[float, int]:
    """Seconds to the `load` event, and the session rows then in the page."""
    figures = load_figures(path)
    return figures["load_s"], int(figures["rows_at_load"])


def load_figures(path: Path) -> dict[str, float]:
    """Wall time to the `load` event and to the complete session list (rows added from
    compressed blocks after loading), the Chromium CPU seconds spent up to each (on a busy
    machine the wall time waits for other jobs; CPU time is what an idle one would take), and
    the rows in the page at `load`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        cpu0, started = _chromium_cpu(), time.perf_counter()
        page.goto(path.resolve().as_uri(), wait_until="load", timeout=300_000)
        loaded, cpu_loaded = time.perf_counter() - started, _chromium_cpu() - cpu0
        rows = int(page.eval_on_selector_all("tr.srow", "rs => rs.length"))
        total = int(page.eval_on_selector("#shown", "e => Number(e.textContent)"))
        # Polled from here: wait_for_function compiles its expression with eval, which the
        # report's Content-Security-Policy forbids.
        deadline = time.monotonic() + 300
        script = f"document.querySelectorAll('tr.srow').length >= {total}"
        while not page.evaluate(script):
            if time.monotonic() > deadline:
                raise SystemExit("the session list never completed")
            time.sleep(0.02)
        complete, cpu_complete = time.perf_counter() - started, _chromium_cpu() - cpu0
        browser.close()
    if errors:
        raise SystemExit(f"script errors: {errors}")
    return {
        "load_s": loaded,
        "load_cpu_s": cpu_loaded,
        "complete_s": complete,
        "complete_cpu_s": cpu_complete,
        "rows_at_load": rows,
        "rows": total,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the capture and report here")
    parser.add_argument("--report", type=Path, help="load this report instead of making one")
    parser.add_argument("--loads", type=int, default=3, help="times the report is loaded")
    args = parser.parse_args()
    if args.report is not None:
        report = args.report
    else:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="report-size-"))
        folder.mkdir(parents=True, exist_ok=True)
        capture, report = folder / "sessions.pcap", folder / "report.html"
        started = time.perf_counter()
        write_pcap(capture, records(args.sessions, args.seed))
        print(f"capture: {capture.stat().st_size:,} bytes, {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        command = [sys.executable, "-m", "mailsniff", "report", str(capture), "-o", str(report)]
        subprocess.run([*command, "--no-progress"], check=True, cwd=HERE.parent)
        built = time.perf_counter() - started
        print(f"report built in {built:.1f}s")
    size = report.stat().st_size
    print(f"report: {size:,} bytes ({size / 2**20:.1f} MiB)")
    walls: list[float] = []
    for n in range(1, max(args.loads, 1) + 1):
        load_average = os.getloadavg()[0]
        f = load_figures(report)
        walls.append(f["load_s"])
        print(
            f"load {n}: load event {f['load_s']:.2f}s wall ({f['load_cpu_s']:.2f} CPU s, "
            f"{f['rows_at_load']:.0f} session rows), whole session list {f['complete_s']:.2f}s "
            f"({f['complete_cpu_s']:.2f} CPU s, {f['rows']:.0f} rows); load average "
            f"{load_average:.1f} on {os.cpu_count()} cores"
        )
    median = statistics.median(walls)
    print(f"load event wall time: median {median:.2f}s, min {min(walls):.2f}s over {len(walls)}")
    return 0 if size < 20_000_000 and median < 3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
