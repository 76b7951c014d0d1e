"""Live capture pieces: the bounded frame queue, the pcap writer, filter compilation, the socket."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import open_capture
from mailsniff.capture.sniff import (
    CaptureSocket,
    FilterError,
    FrameQueue,
    LiveCapture,
    PcapWriter,
    UnknownInterfaceError,
    compile_bpf,
    default_interface,
    interfaces,
    open_capture_socket,
)
from mailsniff.errors import InputError, UsageError
from mailsniff.status import ExitStatus
from tests.servers import free_port


def _frame(n: int, size: int = 60) -> Frame:
    return Frame(
        ts_ns=1_700_000_000_000_000_000 + n, linktype=1, data=bytes([n % 256]) * size, wirelen=size
    )


# --------------------------------------------------------------------------- FrameQueue


def test_full_queue_drops_and_counts_new_frames_instead_of_growing() -> None:
    queue = FrameQueue(max_frames=3)
    accepted = [queue.put(_frame(n)) for n in range(5)]
    assert accepted == [True, True, True, False, False]
    assert queue.dropped == 2
    assert len(queue) == 3


def test_queue_hands_frames_over_oldest_first_in_batches() -> None:
    queue = FrameQueue(max_frames=10)
    for n in range(5):
        queue.put(_frame(n))
    first = queue.get_batch(3, timeout=0)
    rest = queue.get_batch(10, timeout=0)
    assert [f.ts_ns % 10 for f in first] == [0, 1, 2]
    assert [f.ts_ns % 10 for f in rest] == [3, 4]
    assert queue.get_batch(10, timeout=0) == []


def test_queue_takes_frames_again_once_analysis_caught_up() -> None:
    queue = FrameQueue(max_frames=2)
    for n in range(4):
        queue.put(_frame(n))
    queue.get_batch(2, timeout=0)
    assert queue.put(_frame(9))
    assert queue.dropped == 2


def test_queue_is_bounded_by_bytes_too() -> None:
    queue = FrameQueue(max_frames=1000, max_bytes=150)
    assert queue.put(_frame(0, size=100))
    assert not queue.put(_frame(1, size=100))
    assert queue.put(_frame(2, size=50))
    assert queue.dropped == 1
    queue.get_batch(10, timeout=0)
    assert queue.put(_frame(3, size=150))


# --------------------------------------------------------------------------- PcapWriter


def test_written_pcap_reads_back_with_nanosecond_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    frames = [_frame(n, size=40 + n) for n in range(3)]
    writer = PcapWriter(str(path), linktype=1)
    for frame in frames:
        writer.write(frame)
    writer.close()
    with open_capture(str(path)) as reader:
        assert list(reader) == frames


def test_unwritable_pcap_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        PcapWriter(str(tmp_path / "no" / "such" / "dir.pcap"), linktype=1)


# --------------------------------------------------------------------------- filter, interfaces


def test_valid_filter_compiles_to_bpf_instructions() -> None:
    program = compile_bpf("tcp and (port 25 or port 110)", 1)
    assert program and len(program) % 8 == 0


def test_invalid_filter_is_a_usage_error_with_libpcap_message() -> None:
    with pytest.raises(FilterError) as caught:
        compile_bpf("tcp port", 1)
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_status is ExitStatus.USAGE
    assert "syntax error" in caught.value.message


def test_unknown_interface_lists_the_interfaces_there_are() -> None:
    with pytest.raises(UnknownInterfaceError) as caught:
        open_capture_socket("nosuch0", "tcp")
    assert caught.value.exit_status is ExitStatus.INPUT_ERROR
    assert caught.value.hint is not None and "lo" in caught.value.hint


def test_default_interface_exists() -> None:
    assert default_interface() in interfaces()


# --------------------------------------------------------------------------- capture on lo


def _knock(port: int) -> None:
    """One refused connection: a SYN and a RST on loopback."""
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_loopback_capture_sees_each_packet_once_with_its_timestamp() -> None:
    port = free_port()
    source: CaptureSocket = open_capture_socket("lo", f"tcp port {port}")
    queue = FrameQueue()
    capture = LiveCapture(source=source, queue=queue, count=2)
    before = time.time_ns()
    capture.start()
    try:
        _knock(port)
        assert capture.done.wait(30), "two packets (SYN, RST) were not captured"
    finally:
        capture.stop()
        source.close()
    after = time.time_ns()
    frames = queue.get_batch(10, timeout=0)
    assert capture.captured == 2 and len(frames) == 2
    assert all(f.linktype == 1 and before <= f.ts_ns <= after for f in frames)
    # Ethernet header, IPv4, TCP to the port: the SYN first, then the RST back.
    syn, rst = frames
    assert int.from_bytes(syn.data[36:38], "big") == port
    assert int.from_bytes(rst.data[34:36], "big") == port
    assert capture.error is None


def test_full_size_loopback_frames_are_captured_whole() -> None:
    """Loopback frames reach 65549 bytes (MTU 65536 + Ethernet header): none may be cut."""
    port = free_port()
    payload = 4 * 1024 * 1024
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        source = open_capture_socket("lo", f"tcp port {port}")
        queue = FrameQueue()
        capture = LiveCapture(source=source, queue=queue)
        capture.start()
        try:
            received = 0

            def drain() -> None:
                nonlocal received
                peer, _ = server.accept()
                with peer:
                    while chunk := peer.recv(1 << 20):
                        received += len(chunk)

            reader = threading.Thread(target=drain)
            reader.start()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(b"x" * payload)
            reader.join(30)
        finally:
            capture.stop()  # takes what the kernel already queued before ending
            source.close()
    assert received == payload
    frames = queue.get_batch(1_000_000, timeout=0)
    assert capture.kernel_dropped == 0 and queue.dropped == 0
    # IPv4 total length + 14 bytes of Ethernet header == bytes captured, for every frame.
    assert all(int.from_bytes(f.data[16:18], "big") + 14 == len(f.data) for f in frames)
    assert all(f.wirelen == len(f.data) for f in frames)
    # Every byte sent is in some captured frame (retransmissions may repeat some).
    sent: list[tuple[int, int]] = []
    base: int | None = None
    for f in frames:
        if int.from_bytes(f.data[36:38], "big") != port:
            continue  # server to client
        start = 14 + 20 + (f.data[46] >> 4) * 4
        if len(f.data) > start:
            seq = int.from_bytes(f.data[38:42], "big")
            base = seq if base is None else base
            rel = (seq - base) % 2**32  # the sequence space may wrap
            sent.append((rel, rel + len(f.data) - start))
    sent.sort()
    covered, end = 0, sent[0][0]
    for lo, hi in sent:
        assert lo <= end, "a stretch of the stream was not captured"
        covered += max(0, hi - end)
        end = max(end, hi)
    assert covered == payload
    if int(Path("/sys/class/net/lo/mtu").read_text()) >= 65536:
        assert max(len(f.data) for f in frames) > 65535
