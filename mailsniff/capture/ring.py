"""A TPACKET_V3 receive ring on an AF_PACKET socket (packet_mmap.rst in the kernel's docs).

The kernel writes captured packets straight into a memory-mapped ring of blocks shared with this
process; a block is handed over whole (hundreds of packets) once it is full or after a short
timeout. Moving a block costs the capture process one copy and a status write, however many
packets it holds: nothing is done per packet there. The packets are taken out of a block later,
by `block_frames`, on the analysis side.

The ring is kernel memory the size of `-B/--buffer-size` for as long as the capture runs; it is
what absorbs a burst while the capture process is not scheduled.
"""

from __future__ import annotations

import mmap
import re
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailsniff.capture.frame import Frame
from mailsniff.errors import InputError, UsageError

__all__ = [
    "BLOCK_DESC",
    "DEFAULT_BUFFER",
    "MAX_BUFFER",
    "MIN_BUFFER",
    "PacketRing",
    "block_frames",
    "parse_buffer_size",
    "ring_geometry",
    "setup_ring",
]

#: -B default: 64 MiB of ring (tcpdump/libpcap default to 2 MiB; a mail gateway's burst needs more).
DEFAULT_BUFFER = 64 * 1024 * 1024
MIN_BUFFER = 1024 * 1024
#: Never more than this (kernel memory, locked while capturing), whatever the machine.
MAX_BUFFER = 16 * 1024 * 1024 * 1024
#: Blocks are handed over at least this often when traffic is slow (milliseconds).
RETIRE_MS = 20

_SOL_PACKET = 263
_PACKET_RX_RING = 5
_PACKET_VERSION = 10
_PACKET_IGNORE_OUTGOING = 23
_TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
_TP_STATUS_VLAN_VALID = 1 << 4
_TP_STATUS_VLAN_TPID_VALID = 1 << 6
_PACKET_OUTGOING = 4
_ARPHRD_LOOPBACK = 772

#: struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1's block_status,
#: num_pkts, offset_to_first_pkt, blk_len (the bytes used, the descriptor included).
BLOCK_DESC = struct.Struct("=IIIIII")
_STATUS_AT = 8
_TPACKET_REQ3 = struct.Struct("=IIIIIII")
#: struct tpacket3_hdr up to tp_net, then hv1's vlan tci and tpid.
_PKT_HDR = struct.Struct("=IIIIIIHH")
_VLAN = struct.Struct("=IH")  # at 32: hv1.tp_vlan_tci, tp_vlan_tpid
#: sockaddr_ll follows tpacket3_hdr at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) = 48.
_SLL_AT = 48
_SLL = struct.Struct("=H2siHBB8s")  # host order, but sll_protocol (network order)

_SIZE = re.compile(r"(?i)^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$")


def parse_buffer_size(text: str) -> int:
    """`-B` value in bytes: a bare number is KiB, as tcpdump's -B; or a size like 256M, 1G.

    Raises UsageError (one line) for anything else, or a size out of bounds.
    """
    match = _SIZE.match(text)
    if match is None:
        raise UsageError(
            f"-B/--buffer-size: not a size: {text!r} (KiB as tcpdump's -B, or e.g. 64M, 1G)"
        )
    number, unit = int(match.group(1)), match.group(2).lower()
    size = number * {"": 1024, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]
    limit = min(MAX_BUFFER, _memory_total() // 2)
    if size < MIN_BUFFER:
        raise UsageError(f"-B/--buffer-size: {text} is less than the least ring, 1 MiB (1024)")
    if size > limit:
        raise UsageError(
            f"-B/--buffer-size: {text} is more than {limit // 1024**2} MiB "
            "(half of this machine's memory, at most 16 GiB)"
        )
    return size


def _memory_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return MAX_BUFFER * 2


def ring_geometry(size: int) -> tuple[int, int]:
    """(block size, number of blocks) for a ring of about `size` bytes.

    A block must hold the largest packet (a 65549-byte loopback frame and its headers), so
    blocks are 128 KiB at least; 1 MiB blocks from 8 MiB of ring on (fewer hand-overs).
    """
    block = 1024 * 1024 if size >= 8 * 1024 * 1024 else 128 * 1024
    return block, max(2, size // block)


@dataclass(slots=True)
class PacketRing:
    """The mapped ring of an AF_PACKET socket set up by setup_ring."""

    mm: mmap.mmap
    block_size: int
    blocks: int

    @property
    def size(self) -> int:
        return self.block_size * self.blocks

    def close(self) -> None:
        self.mm.close()


def setup_ring(sock: socket.socket, size: int, ignore_outgoing: bool) -> PacketRing:
    """Make `sock` (not yet bound) a TPACKET_V3 socket with a ring of about `size` bytes.

    Raises InputError when the kernel refuses (a ring that large cannot be allocated).
    """
    block, count = ring_geometry(size)
    frame = 2048
    try:
        sock.setsockopt(_SOL_PACKET, _PACKET_VERSION, _TPACKET_V3)
        req = _TPACKET_REQ3.pack(block, count, frame, block * count // frame, RETIRE_MS, 0, 0)
        sock.setsockopt(_SOL_PACKET, _PACKET_RX_RING, req)
    except OSError as error:
        raise InputError(
            f"cannot set up a {block * count // 1024**2} MiB capture ring: "
            f"{error.strerror or error}",
            hint="a smaller -B/--buffer-size",
        ) from None
    if ignore_outgoing:
        # Loopback shows each packet as sent and as received: the kernel keeps one copy
        # (Linux 4.20+; on older kernels block_frames skips the other copy).
        try:
            sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass
    mm = mmap.mmap(sock.fileno(), block * count, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    return PacketRing(mm=mm, block_size=block, blocks=count)


def _sll_header(pkttype: int, hatype: int, halen: int, addr: bytes, protocol: int) -> bytes:
    """Linux cooked capture v1 header (LINKTYPE_LINUX_SLL), as libpcap writes it."""
    return struct.pack("!HHH8sH", pkttype, hatype, halen, addr[: min(halen, 8)], protocol)


def block_frames(block: bytes, linktype: int, cooked: bool, skip_outgoing: bool) -> Iterator[Frame]:
    """The frames of one ring block (as copied out by the capture process), in capture order.

    With `skip_outgoing`, the outgoing copy of a loopback packet is left out (each is seen
    twice); with `cooked` (SOCK_DGRAM), each frame gets a Linux cooked header, and with
    Ethernet a VLAN tag the kernel took out of the frame is put back where it was.
    """
    _, _, _, count, offset, _ = BLOCK_DESC.unpack_from(block, 0)
    unpack = _PKT_HDR.unpack_from
    sll = _SLL.unpack_from
    for _ in range(count):
        nxt, sec, nsec, snaplen, wirelen, status, mac, _net = unpack(block, offset)
        data = block[offset + mac : offset + mac + snaplen]
        if skip_outgoing or cooked:
            _, proto, _, hatype, pkttype, halen, addr = sll(block, offset + _SLL_AT)
            if skip_outgoing and pkttype == _PACKET_OUTGOING and hatype == _ARPHRD_LOOPBACK:
                offset += nxt
                continue
            if cooked:
                header = _sll_header(pkttype, hatype, halen, addr, int.from_bytes(proto, "big"))
                data = header + data
                wirelen += len(header)
        elif status & _TP_STATUS_VLAN_VALID and linktype == 1 and len(data) >= 12:
            tci, tpid = _VLAN.unpack_from(block, offset + 32)
            if not status & _TP_STATUS_VLAN_TPID_VALID:
                tpid = 0x8100
            data = data[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + data[12:]
            wirelen += 4
        yield Frame(sec * 1_000_000_000 + nsec, linktype, data, wirelen)
        if not nxt:
            break
        offset += nxt
