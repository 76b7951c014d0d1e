"""`send --capture` keeps every packet of a burst, and says so when the kernel dropped some.

The sniffer dissects each packet in Python, so packets wait in the sniffing socket's kernel
buffer while a client sends faster than that (or the machine is busy). With scapy's default
buffer (64 KiB, a few dozen loopback packets) the kernel dropped packets of a burst and of the
test dialogues on a loaded machine: the capture had holes (an EHLO reply line lost, read back as
a gap, left the session with no capabilities).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from mailsniff.send.capture import PacketCapture

#: 2000 writes of 50 bytes with Nagle off: over a thousand segments in a few milliseconds.
WRITES, SIZE = 2000, 50


@contextmanager
def _sink() -> Iterator[tuple[int, list[int]]]:
    """A loopback TCP server on a free port that reads and counts what one client sends."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[int] = []

    def serve() -> None:
        conn, _ = server.accept()
        total = 0
        while data := conn.recv(65536):
            total += len(data)
        received.append(total)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        thread.join(30)
        server.close()


def _burst(capture: PacketCapture) -> tuple[int, list[int]]:
    with _sink() as (port, received):
        with capture.watch("127.0.0.1", port):
            client = socket.create_connection(("127.0.0.1", port))
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(WRITES):
                client.sendall(b"x" * SIZE)
            client.close()
    return port, received


def _client_bytes(pcap: Path, port: int) -> int:
    """Client payload bytes in the capture, each TCP sequence range counted once."""
    seen = {
        (p[TCP].seq, len(p[TCP].payload))
        for p in rdpcap(str(pcap))
        if TCP in p and p[TCP].dport == port and len(p[TCP].payload)
    }
    return sum(length for _, length in seen)


def test_a_burst_of_segments_is_captured_whole(tmp_path: Path) -> None:
    pcap = tmp_path / "burst.pcap"
    capture = PacketCapture(pcap)
    port, received = _burst(capture)
    assert received == [WRITES * SIZE]
    assert capture.save() > 0
    assert capture.dropped == 0
    assert _client_bytes(pcap, port) == WRITES * SIZE


def test_packets_the_kernel_dropped_are_counted(tmp_path: Path) -> None:
    # A buffer of a few packets cannot hold the burst while the sniffer dissects.
    capture = PacketCapture(tmp_path / "small.pcap", buffer_bytes=4096)
    port, received = _burst(capture)
    assert received == [WRITES * SIZE]
    assert capture.dropped > 0
    capture.save()
    assert _client_bytes(tmp_path / "small.pcap", port) < WRITES * SIZE
