"""Captures for the export tests: SMTP dialogues (RFC 5321) turned into pcap files.

Small ones go through tests/e2e/synth (scapy); `fast_pcap` writes big ones directly with struct
(Ethernet / IPv4 / TCP, checksums left zero as offloading NICs leave them in captures).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

from tests.e2e.synth import Conn, Step, frames, tcp_segments, write_pcap

CRLF = b"\r\n"


def stuffed(message: bytes) -> bytes:
    """DATA content with dot-stuffing (RFC 5321 4.5.2) and the end-of-data line."""
    lines = message.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + CRLF for ln in lines) + b".\r\n"


def smtp_steps(
    messages: Sequence[bytes],
    *,
    sender: str = "alice@example.com",
    rcpts: Sequence[str] = ("bob@example.com",),
    login: tuple[str, str] | None = None,
) -> list[Step]:
    """One SMTP session sending each message in its own transaction."""
    steps: list[Step] = [
        ("s", b"220 mx.example.com ESMTP test\r\n"),
        ("c", b"EHLO client.example.com\r\n"),
        ("s", b"250-mx.example.com\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n"),
    ]
    if login is not None:
        user, password = (base64.b64encode(x.encode()) for x in login)
        steps += [
            ("c", b"AUTH LOGIN\r\n"),
            ("s", b"334 VXNlcm5hbWU6\r\n"),
            ("c", user + CRLF),
            ("s", b"334 UGFzc3dvcmQ6\r\n"),
            ("c", password + CRLF),
            ("s", b"235 2.7.0 Authentication successful\r\n"),
        ]
    for n, message in enumerate(messages, 1):
        steps += [
            ("c", f"MAIL FROM:<{sender}>\r\n".encode()),
            ("s", b"250 2.1.0 Ok\r\n"),
        ]
        for rcpt in rcpts:
            steps += [("c", f"RCPT TO:<{rcpt}>\r\n".encode()), ("s", b"250 2.1.5 Ok\r\n")]
        steps += [
            ("c", b"DATA\r\n"),
            ("s", b"354 End data with <CR><LF>.<CR><LF>\r\n"),
            ("c", stuffed(message)),
            ("s", f"250 2.0.0 Ok: queued as Q{n}\r\n".encode()),
        ]
    steps += [("c", b"QUIT\r\n"), ("s", b"221 2.0.0 Bye\r\n")]
    return steps


def write_smtp_capture(path: Path, steps: Sequence[Step], conn: Conn | None = None) -> Path:
    return write_pcap(path, frames(tcp_segments(steps, conn or Conn())))


def message_with_attachments(
    attachments: Sequence[tuple[bytes, bytes]], *, body: str = "See attached.\n"
) -> bytes:
    """A multipart/mixed message; each attachment is (raw filename parameter bytes, content).

    The filename parameter is written as given (quoted), so hostile and 8-bit names travel as
    a sending client could write them.
    """
    msg = EmailMessage()
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "attachments"
    msg["Message-ID"] = "<attachments-1@example.com>"
    msg.set_content(body)
    boundary = b"==export-test=="
    head = msg.as_bytes().split(b"\n\n", 1)[0].replace(b"\n", CRLF)
    head = b"\r\n".join(
        ln
        for ln in head.split(CRLF)
        if not ln.lower().startswith((b"content-type", b"content-transfer", b"mime-version"))
    )
    out = [
        head + CRLF,
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n',
        b"--" + boundary + CRLF,
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        body.encode().replace(b"\n", CRLF),
    ]
    for name, content in attachments:
        encoded = base64.encodebytes(content).replace(b"\n", CRLF)
        out += [
            b"--" + boundary + CRLF,
            b"Content-Type: application/octet-stream\r\n",
            b'Content-Disposition: attachment; filename="' + name + b'"\r\n',
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            encoded,
        ]
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def fast_pcap(path: Path, steps: Sequence[Step], *, mss: int = 1460) -> Path:
    """One TCP connection client 10.0.0.1:40000 -> server 10.0.0.2:25, written with struct."""
    client, server = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    seq = {"c": 1000, "s": 5000}
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    ts = [1_700_000_000_000_000]

    def packet(side: str, flags: int, payload: bytes = b"") -> None:
        other = "s" if side == "c" else "c"
        src, dst = (client, server) if side == "c" else (server, client)
        sport, dport = (40000, 25) if side == "c" else (25, 40000)
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, seq[side], seq[other], 5 << 4, flags, 65535, 0, 0
        )
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
        eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        frame = eth + ip + tcp + payload
        sec, usec = divmod(ts[0], 1_000_000)
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        ts[0] += 10
        seq[side] = (seq[side] + len(payload) + (flags & 0x03 != 0)) % 2**32

    syn, fin, ack, psh = 0x02, 0x01, 0x10, 0x08
    packet("c", syn)
    packet("s", syn | ack)
    packet("c", ack)
    for side, data in steps:
        for i in range(0, len(data), mss):
            packet(side, psh | ack, data[i : i + mss])
        packet("s" if side == "c" else "c", ack)
    packet("s", fin | ack)
    packet("c", fin | ack)
    packet("s", ack)
    path.write_bytes(b"".join(out))
    return path
