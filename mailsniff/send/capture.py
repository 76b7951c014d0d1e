"""Record the client's own TCP connections (RFC 793) into a pcap file while sending (sniffed with
scapy, written by the shared pcap writer)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mailsniff.capture.frame import Frame
from mailsniff.capture.writer import PcapWriter
from mailsniff.errors import InputError, MailsniffError
from mailsniff.status import ExitStatus

__all__ = ["CaptureError", "PacketCapture", "interface_for"]

#: Seconds to wait for the sniffer to start, and for the closing packets to be seen.
_START_TIMEOUT = 10.0
_DRAIN_TIMEOUT = 3.0
_FIN, _RST = 0x01, 0x04
#: Kernel receive buffer of the sniffing socket. The sniffer dissects every packet in Python, so
#: while the client sends a burst (or the machine is busy) packets wait in this buffer; scapy's
#: default (64 KiB, about 50 loopback packets, each seen twice) overflowed under load and the
#: kernel dropped packets: a capture with holes, read back with gaps.
_BUFFER_BYTES = 16 * 1024 * 1024
#: linux/if_packet.h: SOL_PACKET / PACKET_STATISTICS -> struct tpacket_stats {packets, drops}.
_SOL_PACKET, _PACKET_STATISTICS = 263, 6
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


class CaptureError(MailsniffError):
    """The capture could not be started or written (no permission, no interface)."""

    exit_status = ExitStatus.NO_PERMISSION


def interface_for(host: str) -> str:
    """The interface packets to `host` (an IP address) leave by: `lo` for loopback."""
    from scapy.config import conf

    address = ipaddress.ip_address(host)
    if address.version == 6:
        route = conf.route6.route(str(address))
        return str(route[0])
    return str(conf.route.route(str(address))[0])


class PacketCapture:
    """Collects the packets of each watched connection; `save` writes them as one pcap."""

    def __init__(self, path: Path, *, buffer_bytes: int = _BUFFER_BYTES) -> None:
        self.path = path
        self.packets: list[Any] = []
        #: Packets the kernel dropped because the sniffer fell behind (0: the capture is whole;
        #: on `lo`, where each packet is seen twice, a lost packet may count twice).
        self.dropped = 0
        self._buffer_bytes = buffer_bytes

    @contextmanager
    def watch(self, host: str, port: int) -> Iterator[None]:
        """Capture TCP packets to and from host:port while the block runs (and its close)."""
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            try:
                address = str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)[0][4][0])
            except OSError:
                yield  # the connection will fail to resolve too, and say so
                return
        try:
            from scapy.sendrecv import AsyncSniffer
        except ImportError as error:  # pragma: no cover - scapy is a dependency
            raise CaptureError(f"--capture needs scapy: {error}") from None
        import scapy.layers.inet
        import scapy.layers.inet6  # noqa: F401  (binds IPv6 below Ether)
        from scapy.layers.l2 import Ether

        tcp = scapy.layers.inet.TCP

        started = threading.Event()
        fins: list[int] = []
        kept: list[Any] = []
        last = b""

        def seen(packet: Any) -> None:
            # On `lo` every packet is seen twice (sent, then received): keep one copy.
            # Loopback frames carry a zeroed Ethernet header, which scapy leaves as Raw.
            nonlocal last
            raw = bytes(packet)
            if raw == last:
                return
            last = raw
            frame = packet if packet.haslayer(tcp) else Ether(raw)
            frame.time = packet.time
            kept.append(frame)
            flags = int(frame[tcp].flags) if frame.haslayer(tcp) else 0
            if flags & (_FIN | _RST):
                fins.append(flags)

        from scapy.config import conf

        try:
            sock = conf.L2listen(
                iface=interface_for(address), filter=f"tcp and host {address} and port {port}"
            )
        except (OSError, PermissionError) as error:
            raise _cannot_capture(error) from None
        _enlarge_buffer(getattr(sock, "ins", None), self._buffer_bytes)
        sniffer = AsyncSniffer(
            opened_socket=sock, prn=seen, store=False, started_callback=started.set
        )
        try:
            sniffer.start()
        except (OSError, PermissionError) as error:
            sock.close()
            raise _cannot_capture(error) from None
        try:
            if not started.wait(_START_TIMEOUT):
                raise CaptureError("--capture: the packet sniffer did not start")
            yield
        finally:
            # Both FINs (or a RST) seen, or the drain deadline: the connection's packets are in.
            deadline = time.monotonic() + _DRAIN_TIMEOUT
            while time.monotonic() < deadline and len(fins) < 2 and not _has_rst(fins):
                time.sleep(0.01)
            try:
                sniffer.stop()
            except Exception:  # scapy raises if the sniffer thread died; keep what we have
                pass
            self.dropped += _dropped(getattr(sock, "ins", None))
            sock.close()
            self.packets.extend(kept)

    def save(self) -> int:
        """Write every packet captured so far; returns how many."""
        from scapy.config import conf

        frames = [_frame(packet, conf.l2types.layer2num) for packet in self.packets]
        try:
            writer = PcapWriter(str(self.path), frames[0].linktype if frames else 1)
        except InputError as error:
            raise CaptureError(f"--capture {error.message}") from None
        with writer:
            for frame in frames:
                writer.write(frame)
        return len(self.packets)


def _cannot_capture(error: OSError) -> CaptureError:
    return CaptureError(
        f"--capture: cannot capture packets: {error}", hint="run as root or give CAP_NET_RAW"
    )


def _enlarge_buffer(sock: Any, size: int) -> None:
    """Ask for a receive buffer of `size` bytes: beyond net.core.rmem_max when allowed
    (CAP_NET_ADMIN), else as much as rmem_max grants. (`sock` is a packet socket on Linux;
    scapy's listener elsewhere may be none, which keeps its own buffer.)"""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except (OSError, AttributeError):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except (OSError, AttributeError):
            pass


def _dropped(sock: Any) -> int:
    """Packets the kernel dropped on the sniffing socket since it was opened (Linux packet
    sockets; 0 where that is not known)."""
    try:
        _, drops = struct.unpack("II", sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))
    except (OSError, AttributeError, struct.error):
        return 0
    return int(drops)


def _frame(packet: Any, linktypes: dict[type, int]) -> Frame:
    """A sniffed scapy packet as the Frame the pcap writer takes."""
    raw = bytes(packet)
    return Frame(round(float(packet.time) * 1e9), linktypes.get(type(packet), 1), raw, len(raw))


def _has_rst(flags: list[int]) -> bool:
    return any(f & _RST for f in flags)
