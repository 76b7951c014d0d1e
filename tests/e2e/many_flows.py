"""Synthetic captures with many interleaved connections, for --jobs and multi-file reading.

Written with explicit timestamps so that a capture can be split into rotated files, or two
captures made to overlap in time, and the expected single-file result built by merging.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.e2e import synth
from tests.e2e.test_network_conditions import POP3_STEPS, SMTP_STEPS, fragment_big

__all__ = ["Record", "many_connections", "read_records", "write_records"]

Record = tuple[int, bytes]  # (timestamp ns, frame)

#: An SMTP server on a port that is not a mail port: found by its greeting.
UNKNOWN_PORT = 2626


def many_connections(
    count: int = 18, *, start_ns: int = synth.START_NS, first: int = 0
) -> list[Record]:
    """`count` SMTP and POP3 connections from different clients, started 3 packets apart and
    interleaved; some on an unknown port, big data segments as IPv4 fragments."""
    conns = []
    for k in range(first, first + count):
        pop3 = k % 4 == 3
        port = 110 if pop3 else (UNKNOWN_PORT if k % 4 == 2 else 25)
        conn = synth.Conn(
            client_port=40000 + k,
            server_port=port,
            client_ip=f"10.0.{k % 5}.{k + 1}",
            server_ip="192.0.2.25" if k % 2 else "198.51.100.7",
        )
        conns.append(synth.tcp_segments(POP3_STEPS if pop3 else SMTP_STEPS, conn))
    timed = [(3 * i + 2 * j, i, seg) for i, c in enumerate(conns) for j, seg in enumerate(c)]
    segs = [seg for _, _, seg in sorted(timed, key=lambda t: (t[0], t[1]))]
    frames = synth.frames(segs, fragment=fragment_big)
    return [(start_ns + i * 1_000_000, f) for i, f in enumerate(frames)]


def write_records(path: Path, records: list[Record]) -> Path:
    """A nanosecond pcap (Ethernet) of the records, in the order given."""
    parts = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, frame in records:
        sec, ns = divmod(ts, 1_000_000_000)
        parts.append(struct.pack("<IIII", sec, ns, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(parts))
    return path


def read_records(path: Path) -> list[Record]:
    data = path.read_bytes()
    out: list[Record] = []
    offset = 24
    while offset < len(data):
        sec, ns, caplen, _ = struct.unpack_from("<IIII", data, offset)
        out.append((sec * 1_000_000_000 + ns, data[offset + 16 : offset + 16 + caplen]))
        offset += 16 + caplen
    return out
