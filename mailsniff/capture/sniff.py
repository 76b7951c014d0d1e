"""Live capture on a Linux interface: AF_PACKET socket, BPF compiled by libpcap (via scapy)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from mailsniff.capture.bpf import DLT_RAW, FilterError, compile_filter
from mailsniff.capture.frame import Frame
from mailsniff.capture.ring import PacketRing, setup_ring
from mailsniff.capture.writer import SNAPLEN, PcapWriter
from mailsniff.errors import InputError, MailsniffError
from mailsniff.limits import QUEUE_BYTES, QUEUE_FRAMES
from mailsniff.status import ExitStatus

__all__ = [
    "ANY",
    "SNAPLEN",
    "CaptureSocket",
    "CapturePermissionError",
    "FilterError",
    "FrameQueue",
    "LiveCapture",
    "PcapWriter",
    "UnknownInterfaceError",
    "compile_bpf",
    "default_interface",
    "interfaces",
    "open_capture_socket",
]

#: Kernel receive buffer asked for (as root SO_RCVBUFFORCE passes net.core.rmem_max).
_RCVBUF = 32 * 1024 * 1024

# Linux constants (linux/if_packet.h, linux/if_arp.h, asm-generic/socket.h).
_ETH_P_ALL = 0x0003
_SOL_PACKET = 263
_PACKET_STATISTICS = 6
_PACKET_OUTGOING = 4
_SO_TIMESTAMPNS = 35
_SO_RCVBUFFORCE = 33
_SO_ATTACH_FILTER = 26
_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772
_ARPHRD_RAWIP = 519
_ARPHRD_NONE = 0xFFFE
_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = 101
_LINKTYPE_LINUX_SLL = 113
#: The interface name that captures on all of them (tcpdump's).
ANY = "any"
_TIMESPEC = struct.Struct("@qq")
_STATS = struct.Struct("@II")


class CapturePermissionError(MailsniffError):
    """The process may not open a packet socket."""

    exit_status = ExitStatus.NO_PERMISSION


class UnknownInterfaceError(InputError):
    """No interface by that name."""


def interfaces() -> list[str]:
    """Names of the network interfaces there are, in index order."""
    return [name for _, name in socket.if_nameindex()]


def default_interface() -> str:
    """The interface of the IPv4 default route; else the first that is not loopback; else lo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text(errors="replace").splitlines()[1:]:
            parts = line.split()
            if len(parts) > 3 and parts[1] == "00000000" and int(parts[3], 16) & 0x2:
                return parts[0]
    names = interfaces()
    for name in names:
        if name != "lo":
            return name
    return "lo"


def _hardware_type(iface: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{iface}/type").read_text().strip())
    except (OSError, ValueError):
        return _ARPHRD_ETHER


def _link_of(hatype: int) -> tuple[int, int, int]:
    """(socket type, link type written in Frames and pcaps, DLT the filter compiles for)."""
    if hatype in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK):
        return socket.SOCK_RAW, _LINKTYPE_ETHERNET, _LINKTYPE_ETHERNET
    if hatype in (_ARPHRD_NONE, _ARPHRD_RAWIP):
        return socket.SOCK_RAW, _LINKTYPE_RAW, DLT_RAW
    # Anything else: the kernel strips the link header, we write a Linux cooked (SLL) one;
    # the filter runs on the network-layer packet.
    return socket.SOCK_DGRAM, _LINKTYPE_LINUX_SLL, DLT_RAW


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def compile_bpf(expression: str, dlt: int) -> bytes:
    """Compile a capture filter with libpcap for link type `dlt`: the raw sock_filter array.

    Raises FilterError with libpcap's message when the expression is invalid.
    """
    program = compile_filter(expression, dlt)
    if isinstance(program, str):
        raise FilterError(f"invalid capture filter {expression!r}: {program}")
    try:
        return _keep_whole_packets(program.code())
    finally:
        program.free()


_BPF_INSN = struct.Struct("@HBBI")
_BPF_RET_K = 0x06


def _keep_whole_packets(program: bytes) -> bytes:
    """Make every accepting `ret #k` keep SNAPLEN bytes.

    A socket filter's return value is how many bytes of the packet to keep; scapy compiles
    with a snapshot length of 65535, which would cut loopback frames (up to 65549 bytes with
    their Ethernet header) and lose their last bytes without a trace.
    """
    out = bytearray(program)
    for offset in range(0, len(out) - _BPF_INSN.size + 1, _BPF_INSN.size):
        code, jt, jf, k = _BPF_INSN.unpack_from(out, offset)
        if code == _BPF_RET_K and k != 0:
            _BPF_INSN.pack_into(out, offset, code, jt, jf, SNAPLEN)
    return bytes(out)


@dataclass(slots=True)
class CaptureSocket:
    """An open AF_PACKET socket with its filter attached, bound to one interface."""

    sock: socket.socket
    iface: str
    linktype: int
    #: Loopback: each packet passes the tap twice (sent and received): keep only one copy.
    skip_outgoing: bool
    cooked: bool
    #: The TPACKET_V3 ring, when opened with ring_size (packets are then read from it).
    ring: PacketRing | None = None

    def close(self) -> None:
        if self.ring is not None:
            self.ring.close()
        self.sock.close()

    def kernel_stats(self) -> tuple[int, int]:
        """(packets the filter passed, packets the kernel dropped) since the last call."""
        try:
            raw = self.sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _STATS.size)
        except OSError:
            return 0, 0
        received, dropped = _STATS.unpack(raw)
        return int(received), int(dropped)


def open_capture_socket(iface: str, bpf: str, ring_size: int | None = None) -> CaptureSocket:
    """Check the interface, compile the filter, then open and bind the packet socket; with
    `ring_size`, packets go to a TPACKET_V3 ring of that many bytes (capture.ring).

    Raises UnknownInterfaceError, FilterError or CapturePermissionError (in that order of
    checking), each with the message the user needs.
    """
    every = iface == ANY  # all interfaces, as tcpdump -i any: cooked (SLL) frames
    try:
        if not every:
            socket.if_nametoindex(iface)
    except OSError:
        raise UnknownInterfaceError(
            f"no interface named {iface!r}",
            hint=f"interfaces: {', '.join(interfaces())}, or {ANY} for all of them",
        ) from None
    hatype = _ARPHRD_NONE if every else _hardware_type(iface)
    sock_type, linktype, dlt = (
        (socket.SOCK_DGRAM, _LINKTYPE_LINUX_SLL, DLT_RAW) if every else _link_of(hatype)
    )
    program = compile_bpf(bpf, dlt)
    try:
        # Protocol 0: nothing arrives until bind(), so no packet skips the filter.
        sock = socket.socket(socket.AF_PACKET, sock_type, 0)
    except PermissionError:
        raise CapturePermissionError(
            f"no permission to capture on {iface}",
            hint="run as root or give the Python interpreter CAP_NET_RAW",
        ) from None
    ring: PacketRing | None = None
    try:
        buf = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(fprog))
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        if ring_size is not None:
            ring = setup_ring(sock, ring_size, ignore_outgoing=hatype == _ARPHRD_LOOPBACK)
        if every:
            _bind_all_interfaces(sock)
        else:
            sock.bind((iface, _ETH_P_ALL))
    except BaseException as error:
        if ring is not None:
            ring.close()
        sock.close()
        if not isinstance(error, OSError):
            raise
        if isinstance(error, PermissionError):
            raise CapturePermissionError(
                f"no permission to capture on {iface}",
                hint="run as root or give the Python interpreter CAP_NET_RAW",
            ) from None
        raise InputError(f"cannot capture on {iface}: {error.strerror or error}") from None
    capture = CaptureSocket(
        sock=sock,
        iface=iface,
        linktype=linktype,
        skip_outgoing=every or hatype == _ARPHRD_LOOPBACK,
        cooked=sock_type == socket.SOCK_DGRAM,
        ring=ring,
    )
    capture.kernel_stats()  # reset the counters: count from now on
    return capture


def _bind_all_interfaces(sock: socket.socket) -> None:
    """bind() to interface index 0, every interface (Python's bind needs a name)."""
    address = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(_ETH_P_ALL), 0, 0, 0, 0, b"")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sock.fileno(), ctypes.c_char_p(address), len(address)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _sll_header(pkttype: int, hatype: int, addr: bytes, protocol: int) -> bytes:
    """Linux cooked capture v1 header (LINKTYPE_LINUX_SLL), as libpcap writes it."""
    return struct.pack("!HHH8sH", pkttype, hatype, len(addr), addr[:8], protocol)


class FrameQueue:
    """Bounded hand-over from the capture thread to analysis: when full, new frames are
    dropped and counted instead of growing memory."""

    def __init__(self, max_frames: int = QUEUE_FRAMES, max_bytes: int = QUEUE_BYTES) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.dropped = 0
        self._items: deque[Frame] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: Frame) -> bool:
        """Queue a frame; False (and one more drop counted) when the queue is full."""
        with self._lock:
            if (
                len(self._items) >= self.max_frames
                or self._bytes + len(frame.data) > self.max_bytes
            ):
                self.dropped += 1
                return False
            self._items.append(frame)
            self._bytes += len(frame.data)
            self._ready.notify()
            return True

    def get_batch(self, limit: int, timeout: float) -> list[Frame]:
        """Up to `limit` frames, oldest first; waits up to `timeout` seconds for the first."""
        with self._lock:
            if not self._items:
                self._ready.wait(timeout)
            out: list[Frame] = []
            while self._items and len(out) < limit:
                frame = self._items.popleft()
                self._bytes -= len(frame.data)
                out.append(frame)
            return out

    def wake(self) -> None:
        with self._lock:
            self._ready.notify_all()


@dataclass(slots=True)
class LiveCapture:
    """Reads frames from a CaptureSocket on a thread of its own into a FrameQueue.

    Every captured frame also goes to `writer` (the -w pcap), whether analysis keeps up or not.
    The thread ends after `count` frames (when given), on stop(), or on a socket error (kept
    in `error`).
    """

    source: CaptureSocket
    queue: FrameQueue
    writer: PcapWriter | None = None
    count: int | None = None
    captured: int = 0
    kernel_received: int = 0
    kernel_dropped: int = 0
    error: OSError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mailsniff-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait for it (at most about one poll interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.update_kernel_stats()

    def update_kernel_stats(self) -> None:
        received, dropped = self.source.kernel_stats()
        self.kernel_received += received
        self.kernel_dropped += dropped

    def _run(self) -> None:
        try:
            self._loop()
        except OSError as error:
            if not self._stop.is_set():
                self.error = error
        finally:
            if self.writer is not None:
                self.writer.flush()
            self.done.set()
            self.queue.wake()

    def _loop(self) -> None:
        sock = self.source.sock
        sock.settimeout(0.2)
        buf = bytearray(SNAPLEN)
        view = memoryview(buf)
        ancsize = socket.CMSG_SPACE(_TIMESPEC.size)
        skip_outgoing = self.source.skip_outgoing
        cooked = self.source.cooked
        linktype = self.source.linktype
        writer = self.writer
        queue = self.queue
        draining = False
        while True:
            if self.count is not None and self.captured >= self.count:
                return
            if self._stop.is_set() and not draining:
                # Asked to stop: take what the kernel already queued, then end.
                draining = True
                sock.setblocking(False)
            try:
                n, ancdata, _, address = sock.recvmsg_into([view], ancsize, socket.MSG_TRUNC)
            except (TimeoutError, InterruptedError):
                continue
            except BlockingIOError:
                return
            if skip_outgoing and address[2] == _PACKET_OUTGOING and address[3] == _ARPHRD_LOOPBACK:
                continue  # loopback shows each packet as sent and as received: keep one
            ts_ns = 0
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    ts_ns = sec * 1_000_000_000 + nsec
            if not ts_ns:
                ts_ns = time.time_ns()
            wirelen = n
            data = bytes(view[: min(n, SNAPLEN)])
            if cooked:
                header = _sll_header(address[2], address[3], address[4], address[1])
                data = header + data
                wirelen += len(header)
            frame = Frame(ts_ns=ts_ns, linktype=linktype, data=data, wirelen=wirelen)
            self.captured += 1
            if writer is not None:
                writer.write(frame)
            queue.put(frame)
