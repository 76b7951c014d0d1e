"""Time reading and L2-L4 decoding of a generated capture and print frames per second.

Usage: PYTHONPATH=. python benchmarks/decode_speed.py [--frames 200000]
       [--format pcap|pcapng|pcap.gz] [--keep PATH]

Rates are per CPU second of this process (time.process_time), so other load on the machine
disturbs them less than wall-clock time would.

The capture is Ethernet: 85% IPv4/TCP SMTP-like segments (payload 0-1460 bytes), 10% IPv6/TCP,
5% IPv4/UDP; frames are built with scapy once as templates, then written as pcap records.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import tempfile
import time

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from mailsniff.capture.reader import open_capture
from mailsniff.net.decoder import PacketDecoder


def _templates() -> list[bytes]:
    line = b"RCPT TO:<someone@example.com>\r\n"
    frames: list[bytes] = []
    for size in (0, 32, 200, 536, 1460):
        payload = (line * (size // len(line) + 1))[:size]
        frames += [
            bytes(
                Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                / IP(src="10.0.0.1", dst="10.0.0.2")
                / TCP(sport=40000, dport=25)
                / payload
            )
        ] * 17
        frames += [
            bytes(
                Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                / IPv6(src="2001:db8::1", dst="2001:db8::2")
                / TCP(sport=40000, dport=110)
                / payload
            )
        ] * 2
        frames += [
            bytes(
                Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                / IP(src="10.0.0.1", dst="10.0.0.3")
                / UDP(dport=53)
                / payload[:100]
            )
        ]
    return frames


def write_capture(path: str, count: int, fmt: str = "pcap") -> None:
    """Write ``count`` frames cycling through the templates, 1 ms apart.

    Args:
        path: where to write.
        count: how many frames.
        fmt: "pcap", "pcapng" (one interface, Enhanced Packet Blocks) or "pcap.gz".
    """
    templates = _templates()
    opener = gzip.open if fmt.endswith(".gz") else open
    with opener(path, "wb") as out:
        if fmt == "pcapng":
            out.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
            out.write(struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20))
            for i in range(count):
                frame = templates[i % len(templates)]
                pad = -len(frame) % 4
                length = 32 + len(frame) + pad
                ts = (1_700_000_000_000 + i) * 1000
                out.write(
                    struct.pack("<IIIIIII", 6, length, 0, ts >> 32, ts & 0xFFFFFFFF,
                                len(frame), len(frame))
                    + frame + b"\0" * pad + struct.pack("<I", length)
                )  # fmt: skip
            return
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        record = struct.Struct("<IIII")
        for i in range(count):
            frame = templates[i % len(templates)]
            ts = 1_700_000_000_000 + i
            out.write(record.pack(ts // 1000, (ts % 1000) * 1000, len(frame), len(frame)))
            out.write(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--format", choices=["pcap", "pcapng", "pcap.gz"], default="pcap")
    parser.add_argument("--keep", help="write the capture here and keep it")
    args = parser.parse_args()
    path = args.keep or os.path.join(tempfile.mkdtemp(), "bench." + args.format)
    write_capture(path, args.frames, args.format)
    size = os.path.getsize(path)
    print(f"capture: {args.frames} frames, {size / 1e6:.1f} MB ({path})")

    start = time.process_time()
    with open_capture(path) as reader:
        frames = sum(1 for _ in reader)
    read_s = time.process_time() - start
    print(f"read only:     {frames / read_s:>10,.0f} frames/s  ({read_s:.2f} s)")

    decoder = PacketDecoder()
    decode = decoder.decode
    start = time.process_time()
    segments = 0
    with open_capture(path) as reader:
        for frame in reader:
            if decode(frame) is not None:
                segments += 1
    both_s = time.process_time() - start
    print(
        f"read + decode: {frames / both_s:>10,.0f} frames/s  ({both_s:.2f} s, "
        f"{both_s / frames * 1e6:.2f} us/frame, {segments} TCP segments)"
    )
    if not args.keep:
        os.remove(path)


if __name__ == "__main__":
    main()
