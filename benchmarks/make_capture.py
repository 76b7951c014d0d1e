"""Write a large synthetic benchmark capture of SMTP (RFC 5321/4954) and POP3 (RFC 1939) traffic.

Usage: python benchmarks/make_capture.py OUT.pcap [--packets 500000] [--seed 1] [--concurrency 50]

About 80% of the packets belong to mail sessions (SMTP submission with AUTH LOGIN and several
recipients, POP3 retrieval), each message ~32 KB of multipart MIME with a base64 attachment and
RFC 2047 headers in GBK and UTF-8; the rest is HTTP, TLS-like traffic on 443 and DNS over UDP.
Records are packed with struct directly (real IPv4/TCP/UDP checksums), never with scapy, so
millions of packets take seconds; `--check` reads the first packets back with scapy once.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import os
import random
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

CRLF = b"\r\n"
MSS = 1460
MAIL_SHARE = 0.80
START_US = 1_767_225_600 * 1_000_000  # 2026-01-01T00:00:00Z

# A frame waiting to be written: (delay after the session's previous frame in µs, frame bytes).
Step = tuple[int, bytes]


def ones_complement(data: bytes) -> int:
    """RFC 1071 checksum: as 2**16 = 1 (mod 0xFFFF), the number mod 0xFFFF is the word sum."""
    if len(data) % 2:
        data += b"\0"
    return ~(int.from_bytes(data, "big") % 0xFFFF) & 0xFFFF


def ipv4_header(src: bytes, dst: bytes, proto: int, length: int, ident: int, ttl: int) -> bytes:
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + length, ident, 0x4000, ttl, proto, 0, src, dst
    )
    return head[:10] + struct.pack("!H", ones_complement(head)) + head[12:]


@dataclass(slots=True)
class Side:
    mac: bytes
    ip: bytes
    port: int
    seq: int
    ttl: int
    window: int
    ip_id: int


@dataclass(slots=True)
class TcpFlow:
    """Builds the frames of one TCP connection: handshake, data with ACKs, FIN close."""

    client: Side
    server: Side
    rtt_us: int
    steps: list[Step] = field(default_factory=list)
    packets_from_client: int = 0

    def _frame(self, from_client: bool, flags: int, payload: bytes = b"") -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        ack = dst.seq if flags & 0x10 else 0
        tcp = struct.pack(
            "!HHIIBBHHH", src.port, dst.port, src.seq, ack, 0x50, flags, src.window, 0, 0
        )
        pseudo = struct.pack("!4s4sBBH", src.ip, dst.ip, 0, 6, 20 + len(payload))
        check = ones_complement(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
        ip = ipv4_header(src.ip, dst.ip, 6, 20 + len(payload), src.ip_id, src.ttl)
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        src.seq = (src.seq + len(payload) + (flags & 0x02 > 0) + (flags & 0x01)) & 0xFFFFFFFF
        return dst.mac + src.mac + b"\x08\x00" + ip + tcp + payload

    def _add(self, delay_us: int, from_client: bool, flags: int, payload: bytes = b"") -> None:
        self.steps.append((delay_us, self._frame(from_client, flags, payload)))

    def handshake(self) -> None:
        self._add(0, True, 0x02)
        self._add(self.rtt_us, False, 0x12)
        self._add(60, True, 0x10)

    def send(self, from_client: bool, data: bytes, think_us: int) -> None:
        """One application write: MSS-sized segments, the peer ACKs every second one."""
        delay = think_us
        unacked = 0
        for i in range(0, len(data), MSS):
            last = i + MSS >= len(data)
            self._add(delay, from_client, 0x18 if last else 0x10, data[i : i + MSS])
            delay = 15
            unacked += 1
            if unacked == 2 and not last:
                self._add(self.rtt_us // 2, not from_client, 0x10)
                delay = self.rtt_us // 2
                unacked = 0

    def ack(self, from_client: bool, delay_us: int = 40_000) -> None:
        self._add(delay_us, from_client, 0x10)

    def exchange(self, command: bytes, reply: bytes, think_us: int, work_us: int = 400) -> None:
        """A command and its reply; the reply's segment carries the ACK, the client ACKs late."""
        self.send(True, command, think_us)
        self.send(False, reply, self.rtt_us + work_us)
        self.ack(True)

    def close(self, client_first: bool) -> None:
        self._add(200, client_first, 0x11)
        self._add(self.rtt_us, not client_first, 0x11)
        self._add(self.rtt_us, client_first, 0x10)


# ---------------------------------------------------------------------------------------------
# Mail content
# ---------------------------------------------------------------------------------------------

CHINESE_NAMES = ["张帆", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄伟"]
LATIN_NAMES = ["Alice Martin", "Bob Chen", "Carol Dubois", "Dave Mueller", "Eve Lindqvist"]
SUBJECTS = ["季度报告", "会议纪要 第三季度", "发票与合同", "Réunion de suivi", "项目进度更新"]
DOMAINS = ["example.com", "example.net", "example.org", "mail.example.cn", "corp.example"]
BODY_TEXT = "您好,\n附件是本季度的报告,请查收。\nBest regards,\n".encode()


def encoded_word(text: str, rng: random.Random) -> str:
    """RFC 2047 encoded-word, GBK or UTF-8, B or Q."""
    charset = "GBK" if rng.random() < 0.5 else "UTF-8"
    try:
        raw = text.encode(charset.lower())
    except UnicodeEncodeError:
        charset, raw = "UTF-8", text.encode()
    if rng.random() < 0.7:
        return f"=?{charset}?B?{base64.b64encode(raw).decode('ascii')}?="
    quoted = "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"={b:02X}" for b in raw)
    return f"=?{charset}?Q?{quoted}?="


def address(rng: random.Random, serial: int) -> tuple[str, str]:
    """(display header value, bare address)."""
    addr = f"user{serial % 9973}@{rng.choice(DOMAINS)}"
    roll = rng.random()
    if roll < 0.4:
        return f"{encoded_word(rng.choice(CHINESE_NAMES), rng)} <{addr}>", addr
    if roll < 0.7:
        return f'"{rng.choice(LATIN_NAMES)}" <{addr}>', addr
    return addr, addr


class AttachmentPool:
    """A few random blobs, base64-encoded once, sliced per message (fast and varied enough)."""

    def __init__(self, rng: random.Random) -> None:
        self.blobs = [base64.encodebytes(rng.randbytes(40_000)) for _ in range(8)]

    def take(self, rng: random.Random, size: int) -> bytes:
        blob = rng.choice(self.blobs)
        start = rng.randrange(0, len(blob) - size - 80) // 77 * 77  # on a line boundary
        return blob[start : start + size // 77 * 77].replace(b"\n", CRLF)


def build_message(
    rng: random.Random,
    pool: AttachmentPool,
    serial: int,
    sender: str,
    to: list[str],
    cc: list[str],
    when_us: int,
) -> bytes:
    """A ~32 KB multipart/mixed message with RFC 2047 headers and a base64 attachment."""
    boundary = f"----=_Part_{serial}_{rng.randrange(10**9)}"
    filename = rng.choice(["report.pdf", "data.xlsx", "photo.jpg", "报价单.docx"])
    if filename.isascii():
        disposition = f'attachment; filename="{filename}"'
    else:
        disposition = f'attachment; filename="{encoded_word(filename, rng)}"'
    date = format_datetime(datetime.fromtimestamp(when_us / 1e6, UTC))
    headers = [
        f"From: {sender}",
        f"To: {', '.join(to)}",
        *([f"Cc: {', '.join(cc)}"] if cc else []),
        f"Subject: {encoded_word(rng.choice(SUBJECTS), rng)} #{serial}",
        f"Date: {date}",
        f"Message-ID: <{serial}.{rng.randrange(10**12)}@bench.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: base64",
        "",
        base64.encodebytes(BODY_TEXT).decode("ascii").rstrip("\n"),
        "",
        f"--{boundary}",
        "Content-Type: application/octet-stream",
        "Content-Transfer-Encoding: base64",
        f"Content-Disposition: {disposition}",
        "",
    ]
    head = CRLF.join(h.encode() for h in headers) + CRLF
    attachment = pool.take(rng, rng.randrange(28_000, 33_000))
    return head + attachment + f"\r\n--{boundary}--\r\n".encode("ascii")


def dot_stuff(message: bytes) -> bytes:
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Stats:
    packets: int = 0
    mail_packets: int = 0
    bytes: int = 0
    sessions: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    recipients: int = 0


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pool = AttachmentPool(self.rng)
        self.serial = 0
        self.servers = [self._ip(203, 0) for _ in range(120)]
        self.in_use: set[tuple[bytes, int, bytes, int]] = set()

    def _ip(self, first: int, second: int | None = None) -> bytes:
        rng = self.rng
        b = rng.randrange(1, 255) if second is None else second
        return bytes([first, b, rng.randrange(0, 256), rng.randrange(1, 255)])

    def _mac(self) -> bytes:
        return bytes([0x02, *self.rng.randbytes(5)])

    def _flow(self, server_ip: bytes, port: int) -> TcpFlow:
        rng = self.rng
        while True:
            client_ip = self._ip(10) if rng.random() < 0.6 else self._ip(192, 168)
            sport = rng.randrange(1024, 65536)
            key = (client_ip, sport, server_ip, port)
            if key not in self.in_use:
                break
        self.in_use.add(key)
        client = Side(
            self._mac(), client_ip, sport, rng.getrandbits(32), 64, 64240, rng.getrandbits(16)
        )
        server = Side(
            self._mac(), server_ip, port, rng.getrandbits(32), 56, 65160, rng.getrandbits(16)
        )
        flow = TcpFlow(client, server, rtt_us=rng.randrange(300, 60_000))
        flow.handshake()
        return flow

    def release(self, flow: TcpFlow) -> None:
        c, s = flow.client, flow.server
        self.in_use.discard((c.ip, c.port, s.ip, s.port))

    def _recipients(self) -> tuple[list[str], list[str], list[str], list[str]]:
        """(To header values, Cc header values, To+Cc addresses, Bcc addresses)."""
        rng = self.rng
        to = [address(rng, self.serial + i) for i in range(rng.randint(1, 3))]
        cc = [address(rng, self.serial + 10 + i) for i in range(rng.randint(0, 2))]
        bcc = [address(rng, self.serial + 20 + i)[1] for i in range(rng.randint(0, 2))]
        return [t[0] for t in to], [c[0] for c in cc], [a[1] for a in to + cc], bcc

    def smtp(self, now_us: int, stats: Stats) -> TcpFlow:
        rng = self.rng
        port = rng.choice([25, 587, 587, 2525])
        flow = self._flow(rng.choice(self.servers), port)
        host = f"mx{rng.randrange(100)}.bench.example"
        user = f"user{rng.randrange(10_000)}@{rng.choice(DOMAINS)}"
        flow.send(False, f"220 {host} ESMTP Postfix\r\n".encode(), flow.rtt_us + 500)
        flow.ack(True)
        flow.exchange(
            f"EHLO client{rng.randrange(1000)}.example\r\n".encode(),
            (
                f"250-{host}\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
                "250-AUTH LOGIN PLAIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
            ).encode(),
            2_000,
        )
        flow.exchange(b"AUTH LOGIN\r\n", b"334 VXNlcm5hbWU6\r\n", 1_000)
        flow.exchange(base64.b64encode(user.encode()) + CRLF, b"334 UGFzc3dvcmQ6\r\n", 800)
        password = f"pw-{rng.randrange(10**8)}".encode()
        flow.exchange(
            base64.b64encode(password) + CRLF, b"235 2.7.0 Authentication successful\r\n", 800
        )
        for _ in range(rng.choice([1, 1, 1, 2])):
            self.serial += 1
            to, cc, visible, bcc = self._recipients()
            sender, sender_addr = address(rng, self.serial)
            msg = build_message(rng, self.pool, self.serial, sender, to, cc, now_us)
            flow.exchange(
                f"MAIL FROM:<{sender_addr}> SIZE={len(msg)}\r\n".encode(), b"250 2.1.0 Ok\r\n", 500
            )
            for rcpt in visible + bcc:
                flow.exchange(f"RCPT TO:<{rcpt}>\r\n".encode(), b"250 2.1.5 Ok\r\n", 300)
            flow.exchange(b"DATA\r\n", b"354 End data with <CR><LF>.<CR><LF>\r\n", 300)
            flow.send(True, dot_stuff(msg) + b".\r\n", 200)
            queue_id = f"{rng.getrandbits(40):010X}"
            flow.send(
                False, f"250 2.0.0 Ok: queued as {queue_id}\r\n".encode(), flow.rtt_us + 3_000
            )
            flow.ack(True)
            stats.messages += 1
            stats.recipients += len(visible) + len(bcc)
        flow.exchange(b"QUIT\r\n", b"221 2.0.0 Bye\r\n", 500)
        flow.close(client_first=False)
        return flow

    def pop3(self, now_us: int, stats: Stats) -> TcpFlow:
        rng = self.rng
        flow = self._flow(rng.choice(self.servers), 110)
        flow.send(False, b"+OK POP3 server ready\r\n", flow.rtt_us + 500)
        flow.ack(True)
        user = f"user{rng.randrange(10_000)}"
        flow.exchange(f"USER {user}\r\n".encode(), b"+OK\r\n", 1_000)
        flow.exchange(f"PASS pw-{rng.randrange(10**8)}\r\n".encode(), b"+OK Logged in.\r\n", 800)
        count = rng.randint(1, 3)
        messages = []
        for _ in range(count):
            self.serial += 1
            to, cc, _, _ = self._recipients()
            sender, _ = address(rng, self.serial)
            messages.append(build_message(rng, self.pool, self.serial, sender, to, cc, now_us))
        total = sum(len(m) for m in messages)
        flow.exchange(b"STAT\r\n", f"+OK {count} {total}\r\n".encode(), 500)
        listing = "".join(f"{i} {len(m)}\r\n" for i, m in enumerate(messages, 1))
        flow.exchange(b"LIST\r\n", f"+OK {count} messages\r\n{listing}.\r\n".encode(), 500)
        for i, msg in enumerate(messages, 1):
            flow.exchange(
                f"RETR {i}\r\n".encode(),
                f"+OK {len(msg)} octets\r\n".encode() + dot_stuff(msg) + b".\r\n",
                400,
            )
            flow.exchange(f"DELE {i}\r\n".encode(), f"+OK message {i} deleted\r\n".encode(), 300)
            stats.messages += 1
        flow.exchange(b"QUIT\r\n", b"+OK Logging out.\r\n", 300)
        flow.close(client_first=False)
        return flow

    def http(self) -> TcpFlow:
        rng = self.rng
        flow = self._flow(self._ip(198, 51), 80)
        path = f"/static/{rng.randrange(10**6)}.js"
        flow.send(True, f"GET {path} HTTP/1.1\r\nHost: www.example.com\r\n\r\n".encode(), 100)
        body = self.pool.take(rng, rng.randrange(500, 20_000))
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        flow.send(False, head + body, flow.rtt_us + 2_000)
        flow.ack(True)
        flow.close(client_first=True)
        return flow

    def tls(self) -> TcpFlow:
        rng = self.rng
        flow = self._flow(self._ip(198, 18), 443)

        def record(kind: int, size: int) -> bytes:
            return struct.pack("!BHH", kind, 0x0303, size) + rng.randbytes(size)

        flow.send(True, record(0x16, rng.randrange(200, 520)), 100)
        flow.send(False, record(0x16, rng.randrange(2500, 4500)), flow.rtt_us + 1_000)
        flow.send(True, record(0x14, 1) + record(0x16, 40), 500)
        for _ in range(rng.randint(1, 4)):
            flow.send(True, record(0x17, rng.randrange(100, 900)), 2_000)
            flow.send(False, record(0x17, rng.randrange(500, 6000)), flow.rtt_us + 3_000)
            flow.ack(True)
        flow.close(client_first=True)
        return flow

    def dns(self) -> list[Step]:
        rng = self.rng
        client, server = self._ip(10), self._ip(192, 0)
        sport, ident = rng.randrange(1024, 65536), rng.getrandbits(16)
        cmac, smac = self._mac(), self._mac()
        name = f"host{rng.randrange(10**5)}.example.com"
        qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
        question = qname + struct.pack("!HH", 1, 1)
        query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question
        answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + self._ip(203, 0)
        response = struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer

        def udp(
            src: bytes, dst: bytes, sp: int, dp: int, data: bytes, smac: bytes, dmac: bytes
        ) -> bytes:
            length = 8 + len(data)
            pseudo = struct.pack("!4s4sBBH", src, dst, 0, 17, length)
            head = struct.pack("!HHHH", sp, dp, length, 0)
            check = ones_complement(pseudo + head + data) or 0xFFFF
            head = head[:6] + struct.pack("!H", check)
            ip = ipv4_header(src, dst, 17, length, rng.getrandbits(16), 64)
            return dmac + smac + b"\x08\x00" + ip + head + data

        return [
            (0, udp(client, server, sport, 53, query, cmac, smac)),
            (rng.randrange(500, 30_000), udp(server, client, 53, sport, response, smac, cmac)),
        ]


# ---------------------------------------------------------------------------------------------
# Scheduling and writing
# ---------------------------------------------------------------------------------------------


@dataclass(order=True, slots=True)
class Active:
    due_us: int
    order: int
    steps: list[Step] = field(compare=False)
    index: int = field(compare=False)
    mail: bool = field(compare=False)
    flow: TcpFlow | None = field(compare=False)


def frames(target: int, seed: int, concurrency: int, stats: Stats) -> Iterator[tuple[int, bytes]]:
    """(timestamp µs, frame) in time order, ~target of them, `concurrency` sessions interleaved."""
    gen = Generator(seed)
    rng = gen.rng
    heap: list[Active] = []
    order = 0
    now = START_US
    pending = 0  # frames already built but not yet emitted
    built = [0, 0]  # frames built: mail, all

    def start(at_us: int) -> None:
        nonlocal order, pending
        flow: TcpFlow | None = None
        mail = built[0] <= MAIL_SHARE * built[1]
        if mail:
            kind = "smtp" if rng.random() < 0.6 else "pop3"
            flow = gen.smtp(at_us, stats) if kind == "smtp" else gen.pop3(at_us, stats)
            steps = flow.steps
        else:
            kind = rng.choice(["http", "tls", "dns", "dns"])
            if kind == "dns":
                steps = gen.dns()
            else:
                flow = gen.http() if kind == "http" else gen.tls()
                steps = flow.steps
        stats.sessions[kind] = stats.sessions.get(kind, 0) + 1
        order += 1
        pending += len(steps)
        built[0] += len(steps) if mail else 0
        built[1] += len(steps)
        heapq.heappush(heap, Active(at_us + steps[0][0], order, steps, 0, mail, flow))

    for _ in range(concurrency):
        start(now + rng.randrange(0, 200_000))
    while heap:
        item = heapq.heappop(heap)
        now = item.due_us
        frame = item.steps[item.index][1]
        yield now, frame
        pending -= 1
        stats.packets += 1
        stats.mail_packets += item.mail
        stats.bytes += len(frame)
        item.index += 1
        if item.index < len(item.steps):
            item.due_us = now + item.steps[item.index][0]
            heapq.heappush(heap, item)
            continue
        if item.flow is not None:
            gen.release(item.flow)
        if stats.packets + pending < target:
            start(now + rng.randrange(100, 50_000))


def write_pcap(path: Path, records: Iterator[tuple[int, bytes]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        batch: list[bytes] = []
        for ts_us, frame in records:
            sec, usec = divmod(ts_us, 1_000_000)
            batch.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            batch.append(frame)
            if len(batch) >= 4096:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    os.replace(tmp, path)


def rotate(path: Path, files: int) -> Path:
    """Split the capture into `files` pcap files of about equal size in the folder
    `<path>.rotated/`, named as tcpdump -C names them (NAME, NAME1, NAME2, ...): each rotation
    cuts the connections open at that point in two, as a real rotation does."""
    folder = path.with_name(path.name + ".rotated")
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    data = path.read_bytes()
    header, body = data[:24], memoryview(data)[24:]
    target = -(-len(body) // files)
    cuts = [0]
    offset = 0
    while offset < len(body):
        caplen = struct.unpack_from("<I", body, offset + 8)[0]
        offset += 16 + caplen
        if offset - cuts[-1] >= target and len(cuts) < files:
            cuts.append(offset)
    cuts.append(len(body))
    for n, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        name = path.name if n == 0 else f"{path.name}{n}"
        (folder / name).write_bytes(header + body[a:b])
    return folder


def check_with_scapy(path: Path, count: int = 2000) -> None:
    """Read the first packets back with scapy once: every IP/TCP/UDP checksum must verify."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapReader

    with PcapReader(str(path)) as reader:
        for i, pkt in enumerate(reader):
            if i >= count:
                break
            rebuilt = Ether(bytes(pkt))
            for layer in (IP, TCP, UDP):
                if layer in rebuilt:
                    del rebuilt[layer].chksum
            rebuilt = Ether(bytes(rebuilt))
            for layer in (IP, TCP, UDP):
                if layer in pkt and pkt[layer].chksum != rebuilt[layer].chksum:
                    raise SystemExit(f"packet {i + 1}: bad {layer.__name__} checksum")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a large SMTP/POP3 benchmark capture.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--check", action="store_true", help="verify checksums with scapy")
    parser.add_argument(
        "--rotate",
        type=int,
        metavar="N",
        help="also split it into N files in OUT.rotated/ (tcpdump -C style, mid-connection)",
    )
    args = parser.parse_args(argv)
    if args.packets < 1 or args.concurrency < 1:
        parser.error("--packets and --concurrency must be positive")
    if args.rotate is not None and args.rotate < 1:
        parser.error("--rotate must be positive")
    stats = Stats()
    began = time.perf_counter()
    write_pcap(args.out, frames(args.packets, args.seed, args.concurrency, stats))
    elapsed = time.perf_counter() - began
    if args.check:
        check_with_scapy(args.out)
    sessions = ", ".join(f"{k} {v}" for k, v in sorted(stats.sessions.items()))
    print(
        f"wrote {args.out}: {stats.packets} packets, {args.out.stat().st_size} bytes, "
        f"{sum(stats.sessions.values())} sessions ({sessions}), {stats.messages} messages, "
        f"{stats.recipients} SMTP recipients, "
        f"{100 * stats.mail_packets / max(1, stats.packets):.1f}% mail packets, {elapsed:.1f}s"
    )
    if args.rotate is not None:
        folder = rotate(args.out, args.rotate)
        print(f"wrote {args.rotate} rotated files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
