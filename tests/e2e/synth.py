"""Synthetic captures of TCP dialogues (RFC 9293, 791, 8200) under chosen network conditions.

A dialogue is a list of steps `(side, bytes)`, side "c" (client) or "s" (server). `tcp_segments`
turns it into one TCP connection (handshake, sequence/ack numbers, a pure ACK after each write,
FIN or RST close); helpers reorder, duplicate or overlap those segments; `frames` puts them on a
link layer (optionally IPv6, optionally IPv4-fragmented); `write_pcap` / `write_pcapng` write them
with consecutive timestamps (1 ms apart by default).
"""

from __future__ import annotations

import gzip
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "Conn",
    "Cut",
    "LINKTYPES",
    "Seg",
    "Step",
    "by_size",
    "dialogue_from_pcap",
    "duplicated",
    "frames",
    "interleave",
    "overlapping",
    "pipelined",
    "random_sizes",
    "shuffled",
    "tcp_segments",
    "with_keepalives",
    "write_pcap",
    "write_pcapng",
]

Step = tuple[str, bytes]
#: How one write is cut into segments: (side, data) -> segment sizes summing to len(data).
Cut = Callable[[str, bytes], list[int]]

#: Link layer name -> pcap LINKTYPE.
LINKTYPES = {
    "ether": 1,
    "dot1q": 1,
    "qinq": 1,
    "null": 0,
    "raw": 101,
    "sll": 113,
    "sll2": 276,
}

START_NS = 1_151_932_038_000_000_000  # 2006-07-03T13:07:18Z, the seed session's start


@dataclass(slots=True, eq=False)
class Conn:
    """The two endpoints of one connection and their initial sequence numbers."""

    client_port: int = 32874
    server_port: int = 25
    client_ip: str = "192.168.1.100"
    server_ip: str = "202.108.5.81"
    client_isn: int = 0x5C2B9A07
    server_isn: int = 0x1B7F03C5
    ipv6: bool = False
    client_mac: str = "00:0c:29:5b:3d:a1"
    server_mac: str = "00:0f:e2:8c:71:04"


@dataclass(slots=True)
class Seg:
    """One TCP segment; `offset` is the stream offset of its first payload byte (0 after SYN)."""

    conn: Conn
    side: str
    flags: str
    seq: int
    ack: int
    payload: bytes = b""
    offset: int = 0
    mss: int = field(default=1460)


def by_size(n: int) -> Cut:
    """Cut every write into segments of at most n bytes."""

    def cut(side: str, data: bytes) -> list[int]:
        return [min(n, len(data) - i) for i in range(0, len(data), n)] or [0]

    return cut


def random_sizes(seed: int, lo: int = 1, hi: int = 1460) -> Cut:
    """Cut every write at random sizes in [lo, hi] (deterministic for a seed)."""
    rng = random.Random(seed)

    def cut(side: str, data: bytes) -> list[int]:
        sizes: list[int] = []
        left = len(data)
        while left > 0:
            sizes.append(min(left, rng.randint(lo, hi)))
            left -= sizes[-1]
        return sizes

    return cut


def tcp_segments(
    steps: Sequence[Step],
    conn: Conn,
    cut: Cut | None = None,
    *,
    mss: int = 1460,
    close: str = "fin",
) -> list[Seg]:
    """One connection: SYN, SYN-ACK, ACK, each step's segments then the peer's ACK, then close.

    cut defaults to by_size(mss). close is "fin" (server FIN first, as after QUIT), "fin-data"
    (the FIN rides on the last write's last segment), "rst" (the server resets) or "none".
    """
    cut = cut or by_size(mss)
    seq = {"c": conn.client_isn % 2**32, "s": conn.server_isn % 2**32}
    off = {"c": 0, "s": 0}
    out: list[Seg] = []

    def emit(side: str, flags: str, payload: bytes = b"") -> None:
        other = "s" if side == "c" else "c"
        ack = seq[other] if "A" in flags else 0
        out.append(Seg(conn, side, flags, seq[side], ack, payload, off[side], mss))
        seq[side] = (seq[side] + len(payload) + ("S" in flags) + ("F" in flags)) % 2**32
        off[side] += len(payload)

    emit("c", "S")
    emit("s", "SA")
    emit("c", "A")
    for n, (side, data) in enumerate(steps):
        sizes = cut(side, data)
        assert sum(sizes) == len(data), "a cut must cover the write exactly"
        pos = 0
        for k, size in enumerate(sizes):
            last = close == "fin-data" and n == len(steps) - 1 and k == len(sizes) - 1
            emit(side, "FPA" if last else "PA", data[pos : pos + size])
            pos += size
        emit("s" if side == "c" else "c", "A")
    if close == "fin-data":
        emit("c", "FA")
        emit("s", "A")
    elif close == "fin":
        emit("s", "FA")
        emit("c", "A")
        emit("c", "FA")
        emit("s", "A")
    elif close == "rst":
        emit("s", "RA")
    return out


def _runs(segs: list[Seg]) -> list[tuple[int, int]]:
    """[start, end) of every maximal run of data segments of one connection and side."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(segs):
        if not segs[i].payload:
            i += 1
            continue
        j = i
        while (
            j < len(segs)
            and segs[j].payload
            and segs[j].side == segs[i].side
            and segs[j].conn is segs[i].conn
        ):
            j += 1
        runs.append((i, j))
        i = j
    return runs


def shuffled(segs: list[Seg], seed: int, window: int) -> list[Seg]:
    """Out-of-order delivery: each run of one side's data is permuted within windows."""
    rng = random.Random(seed)
    out = list(segs)
    for start, end in _runs(out):
        for k in range(start, end, window):
            chunk = out[k : min(k + window, end)]
            rng.shuffle(chunk)
            out[k : k + len(chunk)] = chunk
    return out


def duplicated(segs: list[Seg], every: int, later: int = 2) -> list[Seg]:
    """Every `every`-th data segment is captured again `later` packets after the original."""
    out = list(segs)
    picks = [i for i, s in enumerate(segs) if s.payload][::every]
    for i in reversed(picks):
        out.insert(min(i + 1 + later, len(out)), replace(segs[i]))
    return out


def overlapping(segs: list[Seg], every: int) -> list[Seg]:
    """After every `every`-th pair of adjacent data segments, a retransmission spanning both.

    The retransmission carries the second half of the first and the first half of the second,
    with identical bytes (a sender repacketizing after a lost ACK). Use before any reordering.
    """
    out: list[Seg] = []
    count = 0
    for i, s in enumerate(segs):
        out.append(s)
        prev = segs[i - 1] if i else None
        if (
            prev is not None
            and prev.payload
            and s.payload
            and prev.conn is s.conn
            and prev.side == s.side
            and len(prev.payload) >= 2
            and len(s.payload) >= 2
        ):
            count += 1
            if count % every == 0:
                half = len(prev.payload) // 2
                data = prev.payload[half:] + s.payload[: len(s.payload) // 2]
                out.append(
                    replace(prev, seq=(prev.seq + half) % 2**32, payload=data, offset=prev.offset)
                )
    return out


def with_keepalives(segs: list[Seg], stale: bytes = b"\0") -> list[Seg]:
    """After each pure ACK of a write, the writer sends a keep-alive probe: sequence number one
    below the next byte, carrying `stale` (one garbage byte, as Windows does; b"" for none)."""
    out: list[Seg] = []
    last: dict[tuple[int, str], Seg] = {}
    for s in segs:
        out.append(s)
        if s.payload:
            last[(id(s.conn), s.side)] = s
            continue
        writer = last.get((id(s.conn), "c" if s.side == "s" else "s"))
        if s.flags == "A" and writer is not None:
            end = writer.offset + len(writer.payload)
            seq = (writer.seq + len(writer.payload) - 1) % 2**32
            out.append(
                replace(writer, flags="A", seq=seq, ack=s.seq, payload=stale, offset=end - 1)
            )
    return out


def interleave(conns: Sequence[list[Seg]]) -> list[Seg]:
    """Round-robin merge of several connections' packets (each keeps its own order)."""
    out: list[Seg] = []
    iters = [iter(c) for c in conns]
    while iters:
        alive = []
        for it in iters:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt)
                alive.append(it)
        iters = alive
    return out


PIPELINABLE = {
    b"MAIL",
    b"RCPT",
    b"DATA",
    b"NOOP",
    b"QUIT",
    b"RSET",
    b"STAT",
    b"LIST",
    b"TOP",
    b"RETR",
    b"DELE",
    b"UIDL",
}


def _merged(steps: Sequence[Step]) -> list[Step]:
    out: list[Step] = []
    for side, data in steps:
        if out and out[-1][0] == side:
            out[-1] = (side, out[-1][1] + data)
        else:
            out.append((side, data))
    return out


def pipelined(steps: Sequence[Step]) -> list[Step]:
    """The client pipelines (RFC 2920, RFC 2449): runs of MAIL/RCPT/DATA/NOOP/QUIT/STAT/LIST/...
    go out in one write and the server answers them in one write. A group ends with DATA, and
    a message body (after 354) starts a new group, as RFC 2920 requires.
    """
    merged = _merged(steps)
    out: list[Step] = []
    if merged and merged[0][0] == "s":
        out.append(merged.pop(0))
    group_c, group_s = b"", b""

    def flush() -> None:
        nonlocal group_c, group_s
        if group_c:
            out.append(("c", group_c))
        if group_s:
            out.append(("s", group_s))
        group_c, group_s = b"", b""

    prev_reply = b""
    for i in range(0, len(merged), 2):
        c = merged[i][1]
        s = merged[i + 1][1] if i + 1 < len(merged) else b""
        verb = c.split(b"\r\n", 1)[0].split(b" ", 1)[0].upper()
        body = prev_reply.startswith(b"354")
        if body:
            flush()
        if body or verb in PIPELINABLE:
            group_c += c
            group_s += s
            if verb == b"DATA" and not body:
                flush()
        else:
            flush()
            out.append(("c", c))
            if s:
                out.append(("s", s))
        prev_reply = s
    flush()
    return out


def _ip_packet(seg: Seg, ip_id: int, timestamps: bool) -> Any:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    c = seg.conn
    client = seg.side == "c"
    src, dst = (c.client_ip, c.server_ip) if client else (c.server_ip, c.client_ip)
    sport, dport = (c.client_port, c.server_port) if client else (c.server_port, c.client_port)
    tcp = TCP(
        sport=sport,
        dport=dport,
        seq=seg.seq,
        ack=seg.ack,
        flags=seg.flags,
        window=65535,
        options=[("MSS", seg.mss)] if "S" in seg.flags else [],
    )
    if timestamps:  # RFC 7323, as Linux sends on every segment: a 32-byte TCP header
        tcp.options = [*tcp.options, ("NOP", None), ("NOP", None), ("Timestamp", (ip_id, 0))]
    ip = IPv6(src=src, dst=dst, hlim=64) if c.ipv6 else IP(src=src, dst=dst, ttl=64, id=ip_id)
    return ip / tcp / Raw(seg.payload) if seg.payload else ip / tcp


def _link(ip: Any, seg: Seg, link: str) -> bytes:
    from scapy.layers.l2 import (
        CookedLinux,
        CookedLinuxV2,
        Dot1AD,
        Dot1Q,
        Ether,
        Loopback,
    )

    c = seg.conn
    client = seg.side == "c"
    smac, dmac = (c.client_mac, c.server_mac) if client else (c.server_mac, c.client_mac)
    proto = 0x86DD if c.ipv6 else 0x0800
    if link == "raw":
        return bytes(ip)
    if link == "ether":
        return bytes(Ether(src=smac, dst=dmac, type=proto) / ip)
    if link == "dot1q":
        return bytes(Ether(src=smac, dst=dmac) / Dot1Q(vlan=100, type=proto) / ip)
    if link == "qinq":
        return bytes(
            Ether(src=smac, dst=dmac, type=0x88A8)
            / Dot1AD(vlan=200, type=0x8100)
            / Dot1Q(vlan=100, type=proto)
            / ip
        )
    if link == "null":
        return bytes(Loopback(type=30 if c.ipv6 else 2) / ip)
    mac = bytes.fromhex(smac.replace(":", ""))
    if link == "sll":
        # packet type 4: sent by us (the capture runs on the client), 0: to us
        return bytes(
            CookedLinux(pkttype=4 if client else 0, lladdrtype=1, lladdrlen=6, src=mac + b"\0\0")
            / ip
        )
    if link == "sll2":
        return bytes(
            CookedLinuxV2(
                proto=proto,
                ifindex=2,
                lladdrtype=1,
                pkttype=4 if client else 0,
                lladdrlen=6,
                src=mac + b"\0\0",
            )
            / ip
        )
    raise ValueError(f"unknown link {link!r}")


def frames(
    segs: Iterable[Seg],
    link: str = "ether",
    fragment: Callable[[int, Seg], bool] = lambda i, s: False,
    fragsize: int = 512,
    *,
    tcp_timestamps: bool = False,
    trailer: bytes = b"",
    min_size: int = 0,
) -> list[bytes]:
    """Each segment as one frame; segments for which fragment(index, seg) holds become IPv4
    fragments (scapy `fragment()`), emitted last fragment first. `trailer` is appended to every
    frame and frames are then zero-padded to `min_size` (Ethernet: 60 bytes, FCS: 4 bytes)."""
    from scapy.layers.inet import fragment as ip_fragment

    out: list[bytes] = []
    for i, seg in enumerate(segs):
        ip = _ip_packet(seg, (0x1000 + i) & 0xFFFF, tcp_timestamps)
        if not seg.conn.ipv6 and fragment(i, seg):
            pieces = ip_fragment(ip, fragsize=fragsize)  # type: ignore[no-untyped-call]
            out.extend(_link(p, seg, link) for p in reversed(pieces))
        else:
            out.append(_link(ip, seg, link))
    if trailer or min_size:
        out = [f + trailer + b"\0" * (min_size - len(f) - len(trailer)) for f in out]
    return out


def _finish(path: Path, data: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_pcap(
    path: Path,
    frames: Sequence[bytes],
    *,
    linktype: int = 1,
    nano: bool = False,
    snaplen: int = 262144,
    start_ns: int = START_NS,
    step_ns: int = 1_000_000,
    compress: bool = False,
) -> Path:
    """Classic little-endian pcap (microsecond or nanosecond); frames longer than snaplen are cut
    (caplen < origlen), as tcpdump -s does."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    parts = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for i, frame in enumerate(frames):
        sec, ns = divmod(start_ns + i * step_ns, 1_000_000_000)
        cap = frame[:snaplen]
        parts.append(struct.pack("<IIII", sec, ns if nano else ns // 1000, len(cap), len(frame)))
        parts.append(cap)
    return _finish(path, b"".join(parts), compress)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(
    path: Path,
    frames: Sequence[bytes],
    *,
    linktype: int = 1,
    start_ns: int = START_NS,
    step_ns: int = 1_000_000,
    compress: bool = False,
) -> Path:
    """pcapng: section header, one interface (if_tsresol 9: nanoseconds), enhanced packets."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", linktype, 0, 0) + tsresol)
    parts = [shb, idb]
    for i, frame in enumerate(frames):
        ts = start_ns + i * step_ns
        head = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
        parts.append(_block(6, head + frame))
    return _finish(path, b"".join(parts), compress)


def dialogue_from_pcap(path: Path, client_port: int) -> list[Step]:
    """The payload bytes of the connection from `client_port`, consecutive writes of one side
    joined, in capture order."""
    from scapy.layers.inet import TCP
    from scapy.utils import rdpcap

    steps: list[Step] = []
    for pkt in rdpcap(str(path)):
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        payload = bytes(tcp.payload)
        if not payload or client_port not in (tcp.sport, tcp.dport):
            continue
        steps.append(("c" if tcp.sport == client_port else "s", payload))
    return _merged(steps)
