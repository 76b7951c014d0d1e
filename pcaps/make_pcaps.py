"""Regenerate pcaps/: SMTP (RFC 5321, 4954, 2920, 3030), POP3 (RFC 1939) and IMAP (RFC 3501)
captures.

Usage: python pcaps/make_pcaps.py [--out DIR] [--only NAME ...]  (names: see WRITERS)

- seed-telnet.pcap: synthetic (scapy), deterministic, the three telnet dialogues of the seed note.
- cc-bcc-smtplib.pcap: real, smtplib -> aiosmtpd on loopback, captured with tcpdump (needs root).
- pipelining-bdat.pcap: real, a raw-socket client pipelining against aiosmtpd (needs root).
- imap-dovecot.pcap: real, imaplib and fetchmail against dovecot IMAP (needs root).
- sent-copy-mutt.pcap: real, mutt sends through aiosmtpd and files its copy in dovecot's Sent.
"""

from __future__ import annotations

import argparse
import base64
import logging
import math
import os
import random
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"
MSS = 1460

# ---------------------------------------------------------------------------------------------
# (a) the seed note, synthetic
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Host:
    mac: str
    ip: str
    port: int
    isn: int
    ttl: int
    window: int
    ip_id: int


@dataclass(slots=True)
class Conversation:
    """One TCP connection seen from the client's side, built packet by packet with exact times."""

    client: Host
    server: Host
    now_us: int
    rtt_us: int
    packets: list[Any] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=dict)

    def _send(self, side: str, flags: str, payload: bytes = b"", at_us: int | None = None) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether
        from scapy.packet import Raw
        from scapy.utils import EDecimal

        src, dst = (self.client, self.server) if side == "c" else (self.server, self.client)
        other = "s" if side == "c" else "c"
        options: list[tuple[str, Any]] = [("MSS", MSS)] if "S" in flags else []
        tcp = TCP(
            sport=src.port,
            dport=dst.port,
            seq=self.seq[side],
            ack=self.seq[other] if "A" in flags else 0,
            flags=flags,
            window=src.window,
            options=options,
        )
        pkt = Ether(src=src.mac, dst=dst.mac) / IP(
            src=src.ip, dst=dst.ip, ttl=src.ttl, id=src.ip_id, flags="DF"
        )
        pkt = pkt / tcp / Raw(payload) if payload else pkt / tcp
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        t = self.now_us if at_us is None else at_us
        pkt.time = EDecimal(t) / EDecimal(1_000_000)
        self.packets.append(pkt)
        self.seq[side] = (self.seq[side] + len(payload) + ("S" in flags) + ("F" in flags)) % 2**32

    def handshake(self) -> None:
        self.seq = {"c": self.client.isn, "s": self.server.isn}
        self._send("c", "S")
        self.now_us += self.rtt_us
        self._send("s", "SA")
        self.now_us += 90
        self._send("c", "A")

    def client_line(self, line: bytes, think_us: int, acked_by_reply: bool) -> None:
        """The user types one line: telnet sends it as one segment when Enter is pressed."""
        self.now_us += think_us
        self._send("c", "PA", line + CRLF)
        if not acked_by_reply:
            self.now_us += self.rtt_us + 40_000  # the server's delayed ACK
            self._send("s", "A")

    def server_reply(self, data: bytes, work_us: int) -> None:
        """The server answers: the whole reply in one write, cut into MSS-sized segments."""
        self.now_us += self.rtt_us + work_us
        for i in range(0, len(data), MSS):
            self._send("s", "PA", data[i : i + MSS])
            self.now_us += 120
        self.now_us += 40_000  # the client's delayed ACK
        self._send("c", "A")

    def server_close(self) -> None:
        """The server closes after its last reply ("Connection closed by foreign host.")."""
        self.now_us += 300
        self._send("s", "FA")
        self.now_us += 60
        self._send("c", "A")
        self.now_us += 2_000  # telnet notices EOF and closes its side
        self._send("c", "FA")
        self.now_us += self.rtt_us
        self._send("s", "A")


def _lines(*lines: str | bytes) -> bytes:
    return b"".join((x if isinstance(x, bytes) else x.encode("ascii")) + CRLF for x in lines)


def _think(line: bytes | str) -> int:
    """Deterministic typing time: a pause to think plus about 0.15 s per character."""
    return 1_800_000 + 150_000 * len(line)


def _run_dialogue(conv: Conversation, steps: Sequence[tuple[str | None, bytes | None]]) -> None:
    for line, reply in steps:
        if line is not None:
            conv.client_line(line.encode("ascii"), _think(line), acked_by_reply=reply is not None)
        if reply is not None:
            conv.server_reply(reply, work_us=2_000 if line is not None else 500)


def _us(text: str) -> int:
    from datetime import datetime

    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (int(dt.timestamp()) * 1_000_000) + dt.microsecond


def session_server_to_server() -> list[Any]:
    """Seed dialogue 1: telnet straight to the recipient domain's MX, HELO, a GBK-encoded From."""
    conv = Conversation(
        client=Host("00:16:36:4a:7e:11", "222.177.8.218", 1031, 0x3A1C5E02, 128, 65535, 0x1F40),
        server=Host("00:1a:a9:02:11:c0", "220.181.12.11", 25, 0x8E0D4411, 52, 5792, 0x6C21),
        now_us=_us("2011-05-17T02:35:22Z"),
        rtt_us=38_000,
    )
    conv.handshake()
    data_lines = [
        "Date: Tue, 17 May 2011 10:35:22 +0800 (CST)",
        "From: =?GBK?B?1cW3qw==?= <name@youname.com>",
        "To: =?GBK?B?1cW3qw==?= :<tonanme@them.com>",
        "Subject: test",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=GBK",
        "Content-Transfer-Encoding: 7bit",
        "X-Originating-IP: [222.177.8.218]",
        "X-Priority: 3",
        "",  # the note lost the empty line that ends the header block; a real client sends it
        "test",
    ]
    steps: list[tuple[str | None, bytes | None]] = [
        (None, _lines("220 mx.them.com ESMTP Postfix")),
        ("helo tylin", _lines("250 mx.them.com")),
        ("mail from:<name@youname.com>", _lines("250 2.1.0 Ok")),
        ("rcpt to:<tonanme@them.com>", _lines("250 2.1.5 Ok")),
        ("data", _lines("354 End data with <CR><LF>.<CR><LF>")),
        *[(line, None) for line in data_lines],
        (".", _lines("250 2.0.0 Ok: queued as 6D7C21A3F4")),
        ("quit", _lines("221 2.0.0 Bye")),
    ]
    _run_dialogue(conv, steps)
    conv.server_close()
    return conv.packets


def session_smtp_auth() -> tuple[list[Any], int]:
    """Seed dialogue 2: smtp.163.com, plain-text AUTH LOGIN fails, base64 succeeds, 553 then 250."""
    conv = Conversation(
        client=Host("00:0c:29:5b:3d:a1", "192.168.1.100", 32874, 0x5C2B9A07, 64, 5840, 0x4E2A),
        server=Host("00:0f:e2:8c:71:04", "202.108.5.81", 25, 0x1B7F03C5, 53, 5792, 0x0000),
        now_us=_us("2006-07-03T13:07:18Z"),
        rtt_us=31_000,
    )
    conv.handshake()
    steps: list[tuple[str | None, bytes | None]] = [
        (None, _lines("220 163.com Coremail SMTP(Anti Spam) System")),
        (
            "EHLO smtp.163.com",
            _lines(
                "250-mail",
                "250-PIPELINING",
                "250-AUTH LOGIN PLAIN",
                "250-AUTH=LOGIN PLAIN",
                "250 8BITMIME",
            ),
        ),
        ("AUTH LOGIN", _lines("334 dXNlcm5hbWU6")),
        ("crazywill", _lines("334 UGFzc3dvcmQ6")),
        ("mypassword", _lines("535 Error: authentication failed")),
        ("AUTH LOGIN", _lines("334 dXNlcm5hbWU6")),
        ("Y3Jhenl3aWxs", _lines("334 UGFzc3dvcmQ6")),
        ("bXlwYXNzd29yZA==", _lines("235 Authentication successful")),
        (
            "MAIL FROM:<test@163.com>",
            _lines("553 You are not authorized to send mail, authentication is required"),
        ),
        ("MAIL FROM:<crazywill@163.com>", _lines("250 Mail OK")),
        ("RCPT TO:<crazywill@163.com>", _lines("250 Mail OK")),
        ("DATA", _lines("354 Please start mail input.")),
        ("TO: crazywill@163.com", None),
        ("FROM: cccc@163.com", None),
        ("SUBJECT: test by telnet/smtp", None),
        ("", None),  # the note: "the body starts after one empty line below the headers"
        ("test, just a test.", None),
        (".", _lines("250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3")),
        ("NOOP", _lines("250 OK")),
        ("QUIT", _lines("221 Closing connection. Good bye.")),
    ]
    _run_dialogue(conv, steps)
    conv.server_close()
    return conv.packets, conv.now_us


# The note shows the first eight LIST entries and elides the rest; STAT says 254 messages of
# 27676669 bytes in all, and RETR 254 / the STAT after DELE 254 say message 254 is 354 octets.
LIST_SHOWN = [2468, 21945, 33136, 2071, 3364, 18906, 3136, 24764]
LIST_TOTAL = 27676669
LIST_LAST = 354


def list_sizes() -> list[int]:
    """254 plausible message sizes (a few KB to a few MB) whose sum is exactly 27676669."""
    rng = random.Random(20060703)  # random() sequences are reproducible across Python versions
    hidden = 254 - len(LIST_SHOWN) - 1
    raw = [math.exp(rng.random() ** 1.7 * math.log(2500)) - 1 for _ in range(hidden)]
    floor = 900  # the smallest plausible mail: headers and a line of text
    remaining = LIST_TOTAL - sum(LIST_SHOWN) - LIST_LAST
    scale = (remaining - floor * hidden) / sum(raw)
    sizes = [floor + int(x * scale) for x in raw]
    sizes[sizes.index(max(sizes))] += remaining - sum(sizes)
    result = [*LIST_SHOWN, *sizes, LIST_LAST]
    assert len(result) == 254 and sum(result) == LIST_TOTAL and min(result) > 0
    return result


# The note's copy lost the leading tab of the Received header's folded lines and the empty line
# after the headers; the server sent both (RFC 5322 2.2.3, 2.1).
RETR_HEADERS = [
    "Received: from smtp.63.com (unknown [58.252.70.158])",
    "\tby smtp5 (Coremail) with SMTP id wKjREDrA9gIfFqlEjCnRAg==.29062S4;",
    "\tMon, 03 Jul 2006 21:07:18 +0800 (CST)",
    "TO: crazywill@163.com",
    "FROM : cccc@163.com",
    "SUBJECT: test by telnet/smtp",
    "Message-Id: <44A91687.0E6F6C.07562>",
    "Date: Mon, 3 Jul 2006 21:07:19 +0800 (CST)",
    "Sender: crazywill@163.com",
]


def session_pop3(start_us: int) -> list[Any]:
    """Seed dialogue 3: pop.163.com, USER/PASS, STAT, LIST, TOP, RETR, DELE, STAT, QUIT."""
    conv = Conversation(
        client=Host("00:0c:29:5b:3d:a1", "192.168.1.100", 32875, 0x7D01E9B3, 64, 5840, 0x4E61),
        server=Host("00:0f:e2:8c:71:04", "202.108.5.104", 110, 0x2C44A17E, 53, 5792, 0x0000),
        now_us=start_us,
        rtt_us=29_000,
    )
    conv.handshake()
    listing = ["+OK 254 27676669", *(f"{n} {s}" for n, s in enumerate(list_sizes(), 1)), "."]
    steps: list[tuple[str | None, bytes | None]] = [
        (None, _lines("+OK Welcome to coremail Mail Pop3 Server (163com[20050206])")),
        ("USER crazywill", _lines("+OK core mail")),
        ("PASS mypassword", _lines("+OK 254 message(s) [27676669 byte(s)]")),
        ("STAT", _lines("+OK 254 27676669")),
        ("LIST", _lines(*listing)),
        ("TOP 254 0", _lines("+OK core mail", *RETR_HEADERS, "", ".")),
        ("RETR 254", _lines("+OK 354 octets", *RETR_HEADERS, "", "test, just a test.", ".")),
        ("DELE 254", _lines("+OK core mail")),
        ("STAT", _lines("+OK 253 27676315")),
        ("QUIT", _lines("+OK core mail")),
    ]
    _run_dialogue(conv, steps)
    conv.server_close()
    return conv.packets


def seed_packets() -> list[Any]:
    first = session_server_to_server()
    second, smtp_end_us = session_smtp_auth()
    third = session_pop3(
        smtp_end_us + 4_000_000
    )  # the user telnets to port 110 a few seconds later
    # One file, in time order (as mergecap would merge the 2011 and 2006 captures).
    return sorted([*first, *second, *third], key=lambda pkt: pkt.time)


def write_seed(out: Path) -> Path:
    from scapy.utils import wrpcap

    target = out / "seed-telnet.pcap"
    tmp = out / f".{target.name}.tmp"
    wrpcap(str(tmp), seed_packets())
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------------
# Real captures: aiosmtpd on loopback, tcpdump
# ---------------------------------------------------------------------------------------------


def free_port(preferred: int = 2525) -> int:
    """2525 (a submission port mailsniff knows) when free, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


def _pcap_tcp_flags(path: Path) -> list[tuple[tuple[int, int], int]]:
    """(connection, TCP flags) of every packet written so far (Ethernet, IPv4: what tcpdump
    writes for lo); a connection is its two ports, smaller first."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    flags: list[tuple[tuple[int, int], int]] = []
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        if len(frame) < 14 + 20 + 14 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
        flags.append(((min(sport, dport), max(sport, dport)), frame[14 + ihl + 13]))
    return flags


def _closed(packets: list[tuple[tuple[int, int], int]], connections: int = 1) -> bool:
    """`connections` connections seen, each with both FINs and the ACK of the second one, or a
    RST (a connection whose SYN was not captured, such as the end of a readiness probe, is
    ignored)."""
    by_conn: dict[tuple[int, int], list[int]] = {}
    for conn, flags in packets:
        if conn in by_conn or flags & 0x02:
            by_conn.setdefault(conn, []).append(flags)
    if len(by_conn) < connections:
        return False
    for flags in by_conn.values():
        fins = [i for i, f in enumerate(flags) if f & 0x01]
        if not (len(fins) >= 2 and len(flags) > fins[1] + 1) and not any(f & 0x04 for f in flags):
            return False
    return True


@contextmanager
def loopback_capture(target: Path, port: int, *more: int, connections: int = 1) -> Iterator[None]:
    """tcpdump on lo for one port (or several), written to a temporary file and renamed when
    `connections` connections are complete."""
    tmp = target.parent / f".{target.name}.tmp"
    ports = " or ".join(f"tcp port {p}" for p in (port, *more))
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-s", "0"] + ["-w", str(tmp), ports],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline().decode("utf-8", "replace")
    if "listening on" not in banner:
        proc.kill()
        raise RuntimeError(f"tcpdump did not start: {banner.strip()}")
    try:
        yield
        # Wait until both FINs and the last ACK are on disk (tcpdump -U writes packet by packet).
        deadline = time.monotonic() + 15
        while not _closed(_pcap_tcp_flags(tmp), connections):
            if time.monotonic() > deadline:
                seen = sorted({conn for conn, _ in _pcap_tcp_flags(tmp)})
                raise RuntimeError(f"tcpdump did not write every connection to {tmp}: {seen}")
            time.sleep(0.05)
    except BaseException:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        tmp.unlink(missing_ok=True)
        raise
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"tcpdump failed: {err.decode('utf-8', 'replace').strip()}")
    os.replace(tmp, target)


class RecordingHandler:
    """aiosmtpd handler: deterministic queue ids; optional sender/recipient refusals."""

    def __init__(
        self,
        refuse_senders: dict[str, str] | None = None,
        refuse_rcpts: dict[str, str] | None = None,
    ) -> None:
        self.refuse_senders = refuse_senders or {}
        self.refuse_rcpts = refuse_rcpts or {}
        self.queued = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if getattr(server, "chunking", False):
            responses.insert(-1, "250-CHUNKING")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_senders:
            return self.refuse_senders[address]
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpts:
            return self.refuse_rcpts[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.queued += 1
        return f"250 2.0.0 Ok: queued as MS{self.queued:04d}"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    # alice for the SMTP captures; carol (the IMAP user of tests/servers.py) for sent-copy
    accounts = {(b"alice", b"wonderland"), (b"carol", b"imap-pass")}
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) in accounts
    return AuthResult(success=ok, handled=False)


def _chunking_smtp_class() -> type:
    """aiosmtpd 1.4 has no BDAT: a small subclass adds RFC 3030 CHUNKING for the capture."""
    from aiosmtpd.smtp import SMTP

    class ChunkingSMTP(SMTP):
        chunking = True

        async def smtp_BDAT(self, arg: str) -> None:
            parts = arg.split()
            if not parts or not parts[0].isdigit() or parts[1:] not in ([], ["LAST"]):
                await self.push("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
                return
            chunk = await self._reader.readexactly(int(parts[0]))
            envelope = self.envelope
            if envelope is None or envelope.mail_from is None or not envelope.rcpt_tos:
                await self.push("503 5.5.1 Error: need MAIL and RCPT first")
                return
            buffered = (envelope.original_content or b"") + chunk
            envelope.original_content = buffered
            if parts[1:] != ["LAST"]:
                await self.push(f"250 2.0.0 {len(chunk)} octets received")
                return
            envelope.content = buffered
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(status)

    return ChunkingSMTP


@contextmanager
def smtp_server(
    handler: RecordingHandler, chunking: bool = False, tls_context: Any = None
) -> Iterator[int]:
    """aiosmtpd on 127.0.0.1; with `tls_context` it offers STARTTLS."""
    from aiosmtpd.controller import Controller

    smtp_class = _chunking_smtp_class() if chunking else None

    class _Controller(Controller):
        def factory(self) -> Any:
            if smtp_class is None:
                return super().factory()  # type: ignore[no-untyped-call]
            return smtp_class(self.handler, **self.SMTP_kwargs)

    port = free_port()
    controller = _Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        server_hostname="mx.example.com",
        ident="ESMTP aiosmtpd (mailsniff test server)",
        authenticator=_authenticator,
        auth_require_tls=False,
        tls_context=tls_context,
        require_starttls=False,
    )
    controller.start()  # before tcpdump: start() makes a probe connection of its own
    try:
        yield port
    finally:
        controller.stop()


def cc_bcc_message() -> tuple[EmailMessage, list[str]]:
    """The message a mail client builds: To + Cc + Bcc in the headers, Bcc then dropped."""
    msg = EmailMessage()
    msg["From"] = '"Alice Example" <alice@example.com>'
    msg["To"] = "bob@example.com"
    msg["Cc"] = "carol@example.com"
    msg["Bcc"] = "dave@example.com"
    msg["Subject"] = "季度报告 Q3 report"  # non-ASCII: the default policy writes RFC 2047 UTF-8
    msg["Date"] = "Fri, 27 Nov 2026 09:00:00 +0000"
    msg["Message-ID"] = "<cc-bcc-1@example.com>"
    msg.set_content("Hello Bob and Carol,\n\nthe figures are attached.\n\nAlice\n")
    csv = b"quarter,revenue\nQ1,100\nQ2,120\nQ3,135\n"
    msg.add_attachment(csv, maintype="text", subtype="csv", filename="report-q3.csv")
    msg.set_boundary("==mailsniff-cc-bcc==")
    recipients = [a for h in ("To", "Cc", "Bcc") for a in msg.get_all(h, [])]
    del msg["Bcc"]  # what a client does: Bcc recipients go in the envelope only
    return msg, recipients


def write_cc_bcc(out: Path) -> Path:
    target = out / "cc-bcc-smtplib.pcap"
    msg, recipients = cc_bcc_message()
    with smtp_server(RecordingHandler()) as port, loopback_capture(target, port):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com") as smtp:
            smtp.ehlo("client.example.com")
            smtp.user, smtp.password = "alice", "wonderland"
            smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
            refused = smtp.send_message(msg, from_addr="alice@example.com", to_addrs=recipients)
            if refused:
                raise RuntimeError(f"recipients refused: {refused}")
    return target


def _read_replies(sock: socket.socket, count: int) -> bytes:
    """Read until `count` complete replies (final lines "NNN ...") have arrived."""
    buf = b""
    while True:
        finals = [ln for ln in buf.split(CRLF)[:-1] if len(ln) >= 4 and ln[3:4] == b" "]
        if len(finals) >= count:
            return buf
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"server closed early after {buf!r}")
        buf += chunk


PIPELINE_BODY = _lines(
    "From: Alice Example <alice@example.com>",
    "To: bob@example.com, nobody@example.com",
    "Subject: =?GBK?B?1cW3qw==?= pipelined",
    "Date: Fri, 27 Nov 2026 09:05:00 +0000",
    "Message-ID: <pipelined-1@example.com>",
    "",
    "One write carried MAIL, both RCPTs and DATA.",
    "..a line that starts with a dot, stuffed",
)
BDAT_BODY = _lines(
    "From: Alice Example <alice@example.com>",
    "To: bob@example.com",
    "Subject: =?UTF-8?B?5YiG5Z2X?= chunked",
    "Date: Fri, 27 Nov 2026 09:06:00 +0000",
    "Message-ID: <chunked-1@example.com>",
    "",
    "Sent with BDAT: no dot-stuffing, exact octet counts.",
    ".this line starts with a dot and is not stuffed",
)


def write_pipelining(out: Path) -> Path:
    target = out / "pipelining-bdat.pcap"
    handler = RecordingHandler(
        refuse_senders={
            "test@example.com": "553 You are not authorized to send mail, "
            "authentication is required"
        },
        refuse_rcpts={"nobody@example.com": "550 5.1.1 no such user"},
    )
    with smtp_server(handler, chunking=True) as port, loopback_capture(target, port):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            _read_replies(sock, 1)
            sock.sendall(b"EHLO client.example.com\r\n")
            _read_replies(sock, 1)
            # A forged sender, pipelined: 553, then the server refuses RCPT and DATA (503).
            sock.sendall(b"MAIL FROM:<test@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
            _read_replies(sock, 3)
            user = base64.b64encode(b"\0alice\0wonderland")
            sock.sendall(b"AUTH PLAIN " + user + CRLF)
            _read_replies(sock, 1)
            # MAIL, RCPT (accepted), RCPT (550), DATA in one write (RFC 2920).
            sock.sendall(
                b"MAIL FROM:<alice@example.com> BODY=8BITMIME\r\n"
                b"RCPT TO:<bob@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n"
            )
            _read_replies(sock, 4)
            sock.sendall(PIPELINE_BODY + b".\r\n")
            _read_replies(sock, 1)
            # RFC 3030: MAIL, RCPT and the first chunk in one write, then the last chunk.
            half = len(BDAT_BODY) // 2
            sock.sendall(
                b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
                + f"BDAT {half}\r\n".encode("ascii")
                + BDAT_BODY[:half]
            )
            _read_replies(sock, 3)
            rest = BDAT_BODY[half:]
            sock.sendall(f"BDAT {len(rest)} LAST\r\n".encode("ascii") + rest + b"QUIT\r\n")
            _read_replies(sock, 2)
            while sock.recv(65536):
                pass
    return target


def write_send_forged(out: Path) -> Path:
    """mailsniff's own active mode makes the capture: `mailsniff send --capture` through AUTH
    LOGIN, a GBK-encoded forged header From that differs from the envelope (seed case 3), and a
    Bcc recipient (seed case 5)."""
    target = out / "send-forged-gbk.pcap"
    tmp = out / f".{target.name}.tmp"
    with smtp_server(RecordingHandler()) as port:
        argv = [
            sys.executable, "-m", "mailsniff", "send",
            "--server", f"127.0.0.1:{port}", "--helo", "tylin",
            "--auth", "LOGIN", "--user", "alice", "--password", "wonderland",
            "--from", "alice@example.com", "--header-from", "张帆 <ceo@example.com>",
            "--to", "bob@example.com", "--cc", "carol@example.com", "--bcc", "dave@example.com",
            "--subject", "测试 test", "--body", "test, just a test.", "--charset", "GBK",
            "--capture", str(tmp),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"mailsniff send failed ({done.returncode}): {done.stderr.strip()}")
    os.replace(tmp, target)
    return target


def write_starttls_keylog(out: Path) -> Path:
    """`mailsniff send --starttls --capture --keylog`: a submission-like session (STARTTLS, then
    EHLO again, AUTH PLAIN, a message with a Bcc) recorded on the wire, and the TLS secrets its
    client logged; `mailsniff read starttls-keylog.pcap --keylog starttls-keylog.keys` reads
    the whole dialogue, without the key log only up to STARTTLS."""
    import ssl
    import tempfile

    target, keys = out / "starttls-keylog.pcap", out / "starttls-keylog.keys"
    tmp, tmp_keys = out / f".{target.name}.tmp", out / f".{keys.name}.tmp"
    tmp_keys.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as certs:
        cert, key = Path(certs) / "cert.pem", Path(certs) / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=mx.example.com", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        with smtp_server(RecordingHandler(), tls_context=context) as port:
            argv = [
                sys.executable, "-m", "mailsniff", "send",
                "--server", f"127.0.0.1:{port}", "--helo", "laptop.example.com", "--starttls",
                "--auth", "PLAIN", "--user", "alice", "--password", "wonderland",
                "--from", "alice@example.com", "--to", "bob@example.com",
                "--bcc", "dave@example.com", "--subject", "inside TLS",
                "--body", "Sent after STARTTLS; read back with the key log.",
                "--capture", str(tmp), "--keylog", str(tmp_keys),
            ]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"mailsniff send failed ({done.returncode}): {done.stderr.strip()}")
    os.replace(tmp_keys, keys)
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------------------------
# IMAP (RFC 3501, RFC 9051): dovecot on loopback, imaplib, fetchmail and mutt
# ---------------------------------------------------------------------------------------------


class _Inflating:
    """The reading side of an IMAP connection after COMPRESS DEFLATE (RFC 4978): raw deflate."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inflate = zlib.decompressobj(wbits=-15)
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the compressed connection")
        self.buffer += self.inflate.decompress(data)

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def close(self) -> None:
        pass


def _imap_client() -> type:
    """imaplib's IMAP4 with the two commands it lacks: COMPRESS=DEFLATE and IDLE."""
    import imaplib

    class Client(imaplib.IMAP4):
        deflate: Any = None

        def compress(self) -> None:
            typ, data = self.xatom("COMPRESS", "DEFLATE")
            if typ != "OK":
                raise RuntimeError(f"COMPRESS refused: {data}")
            self.deflate = zlib.compressobj(wbits=-15)
            self.file = _Inflating(self.sock)  # type: ignore[assignment]

        def send(self, data: bytes) -> None:
            if self.deflate is not None:
                data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
            self.sock.sendall(data)

        def idle(self, seconds: float) -> None:
            """IDLE (RFC 2177) for `seconds`, then DONE; waits for the tagged OK."""
            tag = self._new_tag()
            self.send(tag + b" IDLE\r\n")
            while not self.readline().startswith(b"+"):
                pass
            time.sleep(seconds)
            self.send(b"DONE\r\n")
            while True:
                line = self.readline()
                if line.startswith(tag + b" "):
                    break
            del self.tagged_commands[tag]
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"IDLE failed: {line!r}")

    return Client


IMAP_SENT = (
    b"From: Carol Example <carol@example.com>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: =?UTF-8?B?5Lya6K6u57qq6KaB?= minutes\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <imap-append-1@example.com>\r\n"
    b"\r\n"
    b"The minutes, filed by imaplib's APPEND.\r\n"
)


def _dovecot_imap() -> Any:
    """tests/servers.py's dovecot IMAP server, on port 143 when that is free."""
    sys.path.insert(0, str(HERE.parent))
    from tests.servers import running_dovecot_imap

    @contextmanager
    def started() -> Iterator[Any]:
        with running_dovecot_imap(port=free_port(143)) as server:
            time.sleep(1)  # the readiness probe's connection ends before the capture starts
            yield server

    return started()


def write_imap_dovecot(out: Path) -> Path:
    """Three clients against dovecot: imaplib with LOGIN, imaplib with AUTHENTICATE PLAIN and
    COMPRESS=DEFLATE, then fetchmail."""
    import imaplib

    target = out / "imap-dovecot.pcap"
    client = _imap_client()
    with _dovecot_imap() as imap, loopback_capture(target, imap.port, connections=3):
        if not imap.compress:
            raise RuntimeError("dovecot's imap_zlib plugin is missing (COMPRESS=DEFLATE)")
        # 1. imaplib: ID, LOGIN, LIST, SELECT, whole and partial FETCH, APPEND to Sent, IDLE.
        c = client("127.0.0.1", imap.port)
        c.xatom("ID", '("name" "imaplib" "version" "3.11")')
        c.login(imap.user, imap.password)
        c.list()
        c.select("INBOX")
        c.uid("FETCH", "1", "(UID FLAGS BODY.PEEK[])")
        c.fetch("2", "(BODY.PEEK[HEADER])")
        c.fetch("2", "(BODY.PEEK[]<0.120>)")
        date = imaplib.Time2Internaldate(1795773600)  # 2026-11-27 10:00:00 UTC
        c.append("Sent", "(\\Seen)", date, IMAP_SENT)
        c.status("Sent", "(MESSAGES UIDNEXT)")
        c.idle(0.3)
        c.logout()
        # 2. imaplib: AUTHENTICATE PLAIN, COMPRESS=DEFLATE, then STORE \Deleted and EXPUNGE.
        c = client("127.0.0.1", imap.port)
        c.authenticate("PLAIN", lambda _: f"\0{imap.user}\0{imap.password}".encode())
        c.compress()
        c.select("INBOX")
        c.fetch("1", "(FLAGS BODY.PEEK[])")
        c.store("1", "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.idle(0.3)
        c.logout()
        # 3. fetchmail (a real Debian mail retriever): LOGIN, fetches what is left, deletes it.
        with tempfile.TemporaryDirectory() as home:
            rc = Path(home) / "fetchmailrc"
            rc.write_text(
                "set no bouncemail\nset invisible\n"
                f"poll 127.0.0.1 service {imap.port} protocol IMAP auth password no envelope\n"
                f' user "{imap.user}" password "{imap.password}" is root here\n'
                f' sslproto "" mda "/bin/sh -c \'cat > /dev/null\'"\n'
            )
            rc.chmod(0o600)
            done = subprocess.run(
                ["fetchmail", "-f", str(rc), "--nosyslog", "-i", str(Path(home) / "ids")],
                capture_output=True,
                timeout=60,
                env={**os.environ, "HOME": home},
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"fetchmail failed: {done.stderr.decode(errors='replace')}")
    return target


def write_sent_copy(out: Path) -> Path:
    """mutt (batch mode) sends To + Cc + Bcc through SMTP and files its copy in Sent (IMAP)."""
    target = out / "sent-copy-mutt.pcap"
    with _dovecot_imap() as imap, smtp_server(RecordingHandler()) as smtp_port:
        with tempfile.TemporaryDirectory() as home:
            muttrc = Path(home) / "muttrc"
            muttrc.write_text(
                'set from="Carol Example <carol@example.com>"\nset use_from=yes\n'
                "set hostname=example.com\n"
                f'set smtp_url="smtp://{imap.user}@127.0.0.1:{smtp_port}/"\n'
                f'set smtp_pass="{imap.password}"\nset ssl_starttls=no\nset ssl_force_tls=no\n'
                f'set folder="imap://{imap.user}@127.0.0.1:{imap.port}/"\n'
                f'set imap_pass="{imap.password}"\nset record="=Sent"\nset copy=yes\n'
            )
            argv = ["mutt", "-n", "-F", str(muttrc), "-s", "Q4 plan"]
            argv += ["-c", "alice@example.com", "-b", "dave@example.com", "--", "bob@example.com"]
            with loopback_capture(target, imap.port, smtp_port, connections=2):
                done = subprocess.run(
                    argv,
                    input=b"Hello Bob,\n\nthe Q4 plan, as agreed.\n\nCarol\n",
                    capture_output=True,
                    timeout=60,
                    env={**os.environ, "HOME": home, "TZ": "UTC"},
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"mutt failed: {done.stderr.decode(errors='replace')}")
    return target


WRITERS = {
    "seed": write_seed,
    "cc-bcc": write_cc_bcc,
    "pipelining": write_pipelining,
    "send-forged": write_send_forged,
    "starttls-keylog": write_starttls_keylog,
    "imap-dovecot": write_imap_dovecot,
    "sent-copy": write_sent_copy,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: pcaps/)")
    parser.add_argument("--only", action="append", choices=sorted(WRITERS), help="repeatable")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own deprecation noise
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(WRITERS):
        path = WRITERS[name](args.out)
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
