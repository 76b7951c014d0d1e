"""pcaps/make_pcaps.py regenerates the shipped SMTP (RFC 5321), POP3 (RFC 1939) and IMAP
(RFC 3501) captures."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from tests.cli_runner import read_json

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "pcaps" / "make_pcaps.py"
SHIPPED = ROOT / "pcaps"
CAN_CAPTURE = hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("tcpdump") is not None
needs_capture = pytest.mark.skipif(not CAN_CAPTURE, reason="real captures need root and tcpdump")

Endpoint = tuple[str, int]
Streams = dict[tuple[Endpoint, Endpoint], tuple[bytes, bytes]]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pcaps")
    only = [] if CAN_CAPTURE else ["--only", "seed"]
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *only],
        check=True,
        cwd=ROOT,
        timeout=300,
        capture_output=True,
    )
    return out


def tcp_streams(path: Path, check_sequence: bool = False) -> Streams:
    """(client, server) -> (client bytes, server bytes), the client being the side that sent SYN.

    With check_sequence, every segment must start exactly where the previous one ended (no gap,
    no overlap, no retransmission) and every ACK must acknowledge what the peer had sent.
    """
    packets: list[Any] = [p for p in rdpcap(str(path)) if TCP in p]
    clients: dict[frozenset[Endpoint], Endpoint] = {}
    for p in packets:
        flags = int(p[TCP].flags)
        if flags & 0x02 and not flags & 0x10:
            clients[frozenset({(p[IP].src, p[TCP].sport), (p[IP].dst, p[TCP].dport)})] = (
                p[IP].src,
                p[TCP].sport,
            )
    segments: dict[tuple[Endpoint, Endpoint], list[tuple[int, int, bytes]]] = {}
    next_seq: dict[Endpoint, int] = {}
    for p in packets:
        src, dst = (p[IP].src, p[TCP].sport), (p[IP].dst, p[TCP].dport)
        tcp = p[TCP]
        payload = bytes(tcp.payload)
        flags = int(tcp.flags)
        if check_sequence:
            if flags & 0x02:
                next_seq[src] = tcp.seq
            assert tcp.seq == next_seq[src], f"{src} seq {tcp.seq} != {next_seq[src]}"
            if flags & 0x10:
                assert tcp.ack == next_seq[dst], f"{src} acks {tcp.ack} != {next_seq[dst]}"
            next_seq[src] = (tcp.seq + len(payload) + (flags & 0x02 > 0) + (flags & 0x01)) % 2**32
        client = clients[frozenset({src, dst})]
        server = dst if src == client else src
        segments.setdefault((client, server), [])
        if payload:
            segments[(client, server)].append((0 if src == client else 1, tcp.seq, payload))
    streams: Streams = {}
    for key, segs in segments.items():
        halves = []
        for side in (0, 1):
            unique = sorted({(seq, data) for s, seq, data in segs if s == side})
            halves.append(b"".join(data for _, data in unique))
        streams[key] = (halves[0], halves[1])
    return streams


def only_stream(path: Path) -> tuple[bytes, bytes]:
    streams = tcp_streams(path)
    assert len(streams) == 1
    return next(iter(streams.values()))


def split_data(client: bytes) -> tuple[bytes, bytes]:
    """The client's SMTP commands before DATA, and the message it sent after DATA."""
    match = re.search(rb"(?im)^DATA\r\n(.*?\r\n)\.\r\n", client, re.S)
    assert match is not None
    return client[: match.start()], match.group(1)


def test_every_capture_is_written(generated: Path) -> None:
    expected = ["seed-telnet.pcap"]
    if CAN_CAPTURE:
        expected += ["cc-bcc-smtplib.pcap", "pipelining-bdat.pcap", "send-forged-gbk.pcap"]
        expected += ["starttls-keylog.pcap"]
        expected += ["imap-dovecot.pcap", "sent-copy-mutt.pcap"]
    for name in expected:
        assert (generated / name).stat().st_size > 1000, name
    assert not list(generated.glob(".*.tmp"))
    if CAN_CAPTURE:  # the key log written beside its capture decrypts it
        keys = generated / "starttls-keylog.keys"
        assert "CLIENT_TRAFFIC_SECRET_0" in keys.read_text()
        [s] = read_json(generated / "starttls-keylog.pcap", "--keylog", str(keys))
        assert s["tls_info"]["decrypted"] is True and s["transactions"]


def test_seed_capture_is_deterministic_and_matches_the_shipped_one(generated: Path) -> None:
    assert tcp_streams(generated / "seed-telnet.pcap") == tcp_streams(SHIPPED / "seed-telnet.pcap")
    first = rdpcap(str(generated / "seed-telnet.pcap"))
    shipped = rdpcap(str(SHIPPED / "seed-telnet.pcap"))
    assert [p.time for p in first] == [p.time for p in shipped]


def test_seed_capture_has_clean_handshakes_sequence_numbers_and_closes(generated: Path) -> None:
    path = generated / "seed-telnet.pcap"
    streams = tcp_streams(path, check_sequence=True)
    assert sorted(server for _, server in streams) == [
        ("202.108.5.104", 110),
        ("202.108.5.81", 25),
        ("220.181.12.11", 25),
    ]
    packets = rdpcap(str(path))
    fins = [p for p in packets if int(p[TCP].flags) & 0x01]
    assert len(fins) == 6
    assert all(int(p[TCP].flags) & 0x04 == 0 for p in packets)
    assert [p.time for p in packets] == sorted(p.time for p in packets)


def test_seed_smtp_auth_session_is_the_note_as_sent(generated: Path) -> None:
    streams = tcp_streams(generated / "seed-telnet.pcap")
    client, server = streams[(("192.168.1.100", 32874), ("202.108.5.81", 25))]
    assert client.startswith(
        b"EHLO smtp.163.com\r\nAUTH LOGIN\r\ncrazywill\r\nmypassword\r\n"
        b"AUTH LOGIN\r\nY3Jhenl3aWxs\r\nbXlwYXNzd29yZA==\r\n"
        b"MAIL FROM:<test@163.com>\r\nMAIL FROM:<crazywill@163.com>\r\n"
    )
    assert client.endswith(
        b"DATA\r\nTO: crazywill@163.com\r\nFROM: cccc@163.com\r\n"
        b"SUBJECT: test by telnet/smtp\r\n\r\ntest, just a test.\r\n.\r\nNOOP\r\nQUIT\r\n"
    )
    assert server.startswith(b"220 163.com Coremail SMTP(Anti Spam) System\r\n")
    assert b"535 Error: authentication failed\r\n" in server
    assert b"553 You are not authorized to send mail, authentication is required\r\n" in server
    assert server.endswith(b"221 Closing connection. Good bye.\r\n")
    assert b"#" not in client


def test_seed_server_to_server_session_carries_the_gbk_headers(generated: Path) -> None:
    streams = tcp_streams(generated / "seed-telnet.pcap")
    client, _ = streams[(("222.177.8.218", 1031), ("220.181.12.11", 25))]
    commands, message = split_data(client)
    assert commands == (
        b"helo tylin\r\nmail from:<name@youname.com>\r\nrcpt to:<tonanme@them.com>\r\n"
    )
    assert message.startswith(b"Date: Tue, 17 May 2011 10:35:22 +0800 (CST)\r\n")
    assert b"From: =?GBK?B?1cW3qw==?= <name@youname.com>\r\n" in message
    assert b"To: =?GBK?B?1cW3qw==?= :<tonanme@them.com>\r\n" in message
    assert message.endswith(b"X-Priority: 3\r\n\r\ntest\r\n")


def test_seed_pop3_listing_adds_up_to_the_stat_total(generated: Path) -> None:
    streams = tcp_streams(generated / "seed-telnet.pcap")
    client, server = streams[(("192.168.1.100", 32875), ("202.108.5.104", 110))]
    assert client == (
        b"USER crazywill\r\nPASS mypassword\r\nSTAT\r\nLIST\r\nTOP 254 0\r\nRETR 254\r\n"
        b"DELE 254\r\nSTAT\r\nQUIT\r\n"
    )
    listing = server[server.index(b"+OK 254 27676669\r\n1 2468\r\n") :]
    listing = listing[: listing.index(b"\r\n.\r\n")]
    entries = [line.split() for line in listing.split(b"\r\n")[1:]]
    assert [int(n) for n, _ in entries] == list(range(1, 255))
    assert sum(int(size) for _, size in entries) == 27676669
    shown = [b"2468", b"21945", b"33136", b"2071", b"3364", b"18906", b"3136", b"24764"]
    assert [size for _, size in entries[:8]] == shown
    assert entries[-1] == [b"254", b"354"]
    assert b"+OK 253 27676315\r\n" in server
    assert server.endswith(b"+OK core mail\r\n")


@needs_capture
def test_bcc_recipient_is_in_the_envelope_but_not_in_the_data(generated: Path) -> None:
    client, server = only_stream(generated / "cc-bcc-smtplib.pcap")
    commands, message = split_data(client)
    assert re.search(rb"(?im)^AUTH LOGIN\r\n", commands)
    for rcpt in (b"bob@example.com", b"carol@example.com", b"dave@example.com"):
        assert re.search(rb"(?im)^RCPT TO:<" + re.escape(rcpt) + rb">", commands)
    assert b"dave@example.com" not in message
    assert b"\r\nTo: bob@example.com\r\n" in message
    assert b"\r\nCc: carol@example.com\r\n" in message
    assert b"Subject: =?utf-8?b?" in message
    assert b'filename="report-q3.csv"' in message
    assert b"235 2.7.0 Authentication successful\r\n" in server
    assert server.endswith(b"221 Bye\r\n")


@needs_capture
def test_pipelined_batches_get_their_refusals(generated: Path) -> None:
    client, server = only_stream(generated / "pipelining-bdat.pcap")
    assert (
        b"MAIL FROM:<alice@example.com> BODY=8BITMIME\r\nRCPT TO:<bob@example.com>\r\n"
        b"RCPT TO:<nobody@example.com>\r\nDATA\r\n"
    ) in client
    assert b"553 You are not authorized to send mail, authentication is required\r\n" in server
    assert b"550 5.1.1 no such user\r\n" in server
    assert b"250-CHUNKING\r\n" in server
    assert re.search(rb"BDAT \d+ LAST\r\n", client)
    assert server.count(b"Ok: queued as") == 2


@needs_capture
def test_mailsniff_send_capture_forges_the_from_and_hides_the_bcc(generated: Path) -> None:
    client, server = only_stream(generated / "send-forged-gbk.pcap")
    commands, message = split_data(client)
    assert re.search(rb"(?im)^EHLO tylin\r\n", commands)
    assert re.search(rb"(?im)^MAIL FROM:<alice@example.com>", commands)
    assert re.search(rb"(?im)^RCPT TO:<dave@example.com>", commands)
    assert b"dave@example.com" not in message
    # 张帆 in GBK as an RFC 2047 B word (charset label and "B" in either case)
    word = "=?GBK?B?" + base64.b64encode("张帆".encode("gbk")).decode() + "?="
    assert word.encode() in re.sub(rb"=\?gbk\?b\?", b"=?GBK?B?", message, flags=re.I)
    assert b"<ceo@example.com>" in message
    assert b"235 " in server


@needs_capture
def test_imap_capture_has_imaplib_compress_and_fetchmail(generated: Path) -> None:
    streams = tcp_streams(generated / "imap-dovecot.pcap")  # in the order they began
    assert len(streams) == 3
    (login, login_s), (compressed, compressed_s), (fetchmail, fetchmail_s) = streams.values()
    assert re.search(rb"(?m)^\w+ ID \(\"name\" \"imaplib\"", login)
    assert re.search(rb"(?m)^\w+ LOGIN carol ", login)
    assert re.search(
        rb"(?m)^\w+ APPEND Sent \(\\Seen\) \"27-Nov-2026 10:00:00 \+0000\" \{\d+\}", login
    )
    assert re.search(rb"(?m)^\w+ FETCH 2 \(BODY\.PEEK\[\]<0\.120>\)", login)
    assert re.search(rb"(?m)^\w+ IDLE\r\nDONE\r\n", login)
    assert b"+ idling\r\n" in login_s
    # AUTHENTICATE PLAIN, then COMPRESS: the rest of both directions is raw deflate
    assert re.search(rb"(?m)^\w+ AUTHENTICATE PLAIN\r\n", compressed)
    assert re.search(rb"(?m)^\w+ COMPRESS DEFLATE\r\n", compressed)
    assert b"SELECT" not in compressed and b"EXPUNGE" not in compressed_s
    assert re.search(rb"(?m)^\w+ LOGIN", fetchmail) and b"EXPUNGE" in fetchmail
    assert b"Dovecot" in fetchmail_s


@needs_capture
def test_sent_copy_capture_keeps_the_bcc_only_in_the_append(generated: Path) -> None:
    streams = tcp_streams(generated / "sent-copy-mutt.pcap")
    assert len(streams) == 2
    # the SMTP connection is the one greeted with 220, the IMAP one with "* OK"
    (smtp_c, smtp_s), (imap_c, _) = sorted(streams.values(), key=lambda h: h[1][:4] != b"220 ")
    commands, message = split_data(smtp_c)
    assert re.search(rb"(?im)^RCPT TO:<dave@example.com>", commands)
    assert b"dave@example.com" not in message and b"\r\nCc: alice@example.com\r\n" in message
    assert re.search(rb"(?m)^\w+ APPEND \"Sent\"", imap_c)
    assert b"\nBcc: dave@example.com\r\n" in imap_c
    message_id = re.search(rb"Message-ID: (<[^>]+>)", message)
    assert message_id is not None and message_id.group(1) in imap_c
    assert smtp_s.startswith(b"220 ") and b"Dovecot" not in smtp_s
