"""What moving packets costs a capture process: TPACKET_V3 ring blocks, or libpcap per packet.

    python benchmarks/capture_cost.py                  # 100k packets/s, 64 MiB of kernel buffer
    python benchmarks/capture_cost.py --pps 200000 -B 8M

Needs root, tcpreplay and iproute2; runs in a network namespace of its own (re-executing itself
there). The benchmark capture is replayed onto that namespace's lo once per method, and a
process that only moves packets (no analysis) captures the mail ports:

- ring: mailsniff's capture process (capture/process.py): a TPACKET_V3 ring, each block
  appended to a spool file as it is (one copy and one write per block).
- libpcap: libpcap through ctypes with pcap_set_buffer_size, one pcap_next_ex call per packet,
  each packet copied out and appended to a buffer written 1 MiB at a time (the least Python a
  per-packet loop can do).

Printed per method: the capture process's CPU seconds, microseconds per packet, packets it
got, and the kernel's drops.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAPTURE = HERE / "out" / "bench-125000-s1.pcap"


def replay(pps: int) -> None:
    subprocess.run(
        ["tcpreplay", "-q", "-i", "lo", "-K", f"--pps={pps}", str(CAPTURE)],
        check=True,
        capture_output=True,
    )


def ring(pps: int, size: int, bpf: str) -> tuple[float, int, int]:
    from mailsniff.capture.process import CaptureProcess
    from mailsniff.capture.sniff import open_capture_socket

    source = open_capture_socket("lo", bpf, ring_size=size)
    process = CaptureProcess(source)
    try:
        process.start()
        time.sleep(0.5)
        replay(pps)
        time.sleep(0.5)
        process.stop()
        blocks = process.reader(0)
        packets = 0
        while batch := blocks.get_batch(4096, 0):
            packets += len(batch)
        return process.cpu_seconds, packets, process.kernel_dropped
    finally:
        process.close()
        source.close()


class _PcapPkthdr(ctypes.Structure):
    _fields_ = [
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PcapStat(ctypes.Structure):
    _fields_ = [
        ("ps_recv", ctypes.c_uint),
        ("ps_drop", ctypes.c_uint),
        ("ps_ifdrop", ctypes.c_uint),
    ]


def _libpcap_child(size: int, bpf: str, out: int, ready: int) -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
    lib.pcap_create.restype = ctypes.c_void_p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for name in ("pcap_set_snaplen", "pcap_set_buffer_size", "pcap_set_timeout"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_activate.argtypes = [ctypes.c_void_p]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_BpfProgram),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_setfilter.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram)]
    lib.pcap_next_ex.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.POINTER(_PcapPkthdr)),
        ctypes.POINTER(ctypes.c_void_p),
    ]
    lib.pcap_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(_PcapStat)]
    errbuf = ctypes.create_string_buffer(256)
    handle = lib.pcap_create(b"lo", errbuf)
    lib.pcap_set_snaplen(handle, 262144)
    lib.pcap_set_buffer_size(handle, size)
    lib.pcap_set_timeout(handle, 20)
    assert lib.pcap_activate(handle) >= 0
    program = _BpfProgram()
    assert lib.pcap_compile(handle, ctypes.byref(program), bpf.encode(), 1, 0xFFFFFFFF) == 0
    assert lib.pcap_setfilter(handle, ctypes.byref(program)) == 0
    stop = False

    def handler(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGUSR1, handler)
    os.write(ready, b"x")
    header = ctypes.POINTER(_PcapPkthdr)()
    data = ctypes.c_void_p()
    next_ex, string_at = lib.pcap_next_ex, ctypes.string_at
    buf = bytearray()
    packets = 0
    with open(os.devnull, "wb") as sink:
        while not stop:
            if next_ex(handle, ctypes.byref(header), ctypes.byref(data)) != 1:
                continue
            h = header.contents
            buf += string_at(data, h.caplen)
            packets += 1
            if len(buf) >= 1 << 20:
                sink.write(buf)
                buf.clear()
    stats = _PcapStat()
    lib.pcap_stats(handle, ctypes.byref(stats))
    cpu = sum(os.times()[:2])
    os.write(out, f"{cpu} {packets} {stats.ps_drop}".encode())
    os._exit(0)


def libpcap(pps: int, size: int, bpf: str) -> tuple[float, int, int]:
    out_r, out_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _libpcap_child(size, bpf, out_w, ready_w)
    os.read(ready_r, 1)
    time.sleep(0.5)
    replay(pps)
    time.sleep(0.5)
    os.kill(pid, signal.SIGUSR1)
    os.waitpid(pid, 0)
    cpu, packets, drops = os.read(out_r, 200).split()
    return float(cpu), int(packets), int(drops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pps", type=int, default=100_000)
    parser.add_argument("-B", "--buffer-size", default="64M")
    parser.add_argument("--netns", default="mscost")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside:
        created = subprocess.run(["ip", "netns", "add", args.netns]).returncode == 0
        try:
            subprocess.run(["ip", "netns", "exec", args.netns, "ip", "link", "set", "lo", "up"])
            argv = [sys.executable, __file__, "--inside", *sys.argv[1:]]
            env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
            subprocess.run(["ip", "netns", "exec", args.netns, *argv], check=True, env=env)
        finally:
            if created:
                subprocess.run(["ip", "netns", "del", args.netns])
        return
    from mailsniff.capture.ring import parse_buffer_size
    from mailsniff.commands.live import build_filter

    size = parse_buffer_size(args.buffer_size)
    bpf = build_filter(None, None)
    print(f"{args.pps:,} packets/s asked, {size // 2**20} MiB kernel buffer")
    print("| method | CPU s | us/packet | packets | kernel dropped |")
    print("|---|---|---|---|---|")
    for name, method in (("ring", ring), ("libpcap", libpcap)):
        cpu, packets, drops = method(args.pps, size, bpf)
        print(f"| {name} | {cpu:.2f} | {cpu / max(packets, 1) * 1e6:.2f} | {packets:,} | {drops} |")


if __name__ == "__main__":
    main()
