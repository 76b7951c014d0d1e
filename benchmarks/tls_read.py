"""The read path on a decrypted capture against the same dialogues in clear.

Usage: PYTHONPATH=. python benchmarks/tls_read.py [--sessions 20] [--message-kb 1024]
       [--version 1.3|1.2] [--keep DIR]

Two captures of the same SMTP submissions (EHLO, AUTH PLAIN, MAIL, RCPT, DATA with a message of
--message-kb KB, QUIT): one in clear, one after STARTTLS. The TLS bytes are real: Python's `ssl`
(OpenSSL) on both ends, joined by MemoryBIOs in this process, with the client writing a key log.
Both are written as pcaps (MSS-sized segments, ACKs) and read by `Pipeline` (`mailsniff read`'s
engine; the TLS one with the key log). Rates are per CPU second of this process
(time.process_time); the check is that both give the same messages.
"""

from __future__ import annotations

import argparse
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import Side, TcpFlow, write_pcap  # noqa: E402

from mailsniff.capture.reader import open_capture  # noqa: E402
from mailsniff.pipeline import Pipeline  # noqa: E402
from mailsniff.tls import KeyLog  # noqa: E402

_LINE = b"The quarterly figures are attached; please review before Monday's meeting.\r\n"


class _TlsPair:
    """A client and a server SSLObject joined in memory; records what each puts on the wire."""

    def __init__(self, certs: Path, keylog: Path, version: str) -> None:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(certs / "cert.pem", certs / "key.pem")
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        client_ctx.keylog_filename = str(keylog)
        if version == "1.2":
            client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self._bios = [ssl.MemoryBIO() for _ in range(4)]
        c_in, c_out, s_in, s_out = self._bios
        self.client = client_ctx.wrap_bio(c_in, c_out, server_hostname="mx.example.com")
        self.server = server_ctx.wrap_bio(s_in, s_out, server_side=True)

    def handshake(self) -> list[tuple[bool, bytes]]:
        c_in, c_out, s_in, s_out = self._bios
        wire: list[tuple[bool, bytes]] = []
        done = [False, False]
        for _ in range(20):
            for i, obj in enumerate((self.client, self.server)):
                if not done[i]:
                    try:
                        obj.do_handshake()
                        done[i] = True
                    except ssl.SSLWantReadError:
                        pass
            sent = c_out.read()
            if sent:
                wire.append((True, sent))
                s_in.write(sent)
            sent = s_out.read()
            if sent:
                wire.append((False, sent))
                c_in.write(sent)
            if all(done) and not c_out.pending and not s_out.pending:
                break
        # TLS 1.3 tickets: let the client read them so they precede its first data.
        try:
            self.client.read(1)
        except ssl.SSLWantReadError:
            pass
        return wire

    def send(self, from_client: bool, data: bytes) -> bytes:
        c_in, c_out, s_in, s_out = self._bios
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        out_bio, in_bio = (c_out, s_in) if from_client else (s_out, c_in)
        src.write(data)
        wire = out_bio.read()
        in_bio.write(wire)
        while True:
            try:
                if not dst.read(1 << 20):
                    break
            except ssl.SSLWantReadError:
                break
        return wire


def _dialogue(message_kb: int) -> list[tuple[bool, bytes]]:
    """The submission after the greeting (and after STARTTLS in the TLS capture)."""
    body = _LINE * (message_kb * 1024 // len(_LINE) + 1)
    message = (
        b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
        b"Subject: figures\r\n\r\n" + body + b".\r\n"
    )
    return [
        (True, b"EHLO laptop.example.com\r\n"),
        (False, b"250-mx.example.com\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"),
        (True, b"AUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n"),
        (False, b"235 2.7.0 Authentication successful\r\n"),
        (True, b"MAIL FROM:<alice@example.com>\r\n"),
        (False, b"250 2.1.0 OK\r\n"),
        (True, b"RCPT TO:<bob@example.com>\r\n"),
        (False, b"250 2.1.5 OK\r\n"),
        (True, b"DATA\r\n"),
        (False, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        (True, message),
        (False, b"250 2.0.0 queued\r\n"),
        (True, b"QUIT\r\n"),
        (False, b"221 2.0.0 Bye\r\n"),
    ]


def _flow(n: int) -> TcpFlow:
    client = Side(b"\x02\x00\x00\x00\x00\x01", bytes([10, 0, 0, 1]), 40000 + n, 1000, 64, 65535, 1)
    server = Side(b"\x02\x00\x00\x00\x00\x02", bytes([10, 0, 0, 2]), 587, 9000, 64, 65535, 1)
    flow = TcpFlow(client, server, rtt_us=2000)
    flow.handshake()
    flow.send(False, b"220 mx.example.com ESMTP\r\n", 100)
    return flow


def build(directory: Path, sessions: int, message_kb: int, version: str) -> tuple[Path, Path, Path]:
    certs = directory / "certs"
    certs.mkdir(exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mx.example.com", "-keyout", str(certs / "key.pem"),
         "-out", str(certs / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    keylog = directory / "bench.keys"
    keylog.unlink(missing_ok=True)
    clear_steps: list[tuple[int, bytes]] = []
    tls_steps: list[tuple[int, bytes]] = []
    dialogue = _dialogue(message_kb)
    for n in range(sessions):
        flow = _flow(n)
        for from_client, data in dialogue:
            flow.send(from_client, data, 300)
        flow.close(True)
        clear_steps += flow.steps
        flow = _flow(n)
        hello = b"250-mx.example.com\r\n250 STARTTLS\r\n"
        flow.exchange(b"EHLO laptop.example.com\r\n", hello, 300)
        flow.exchange(b"STARTTLS\r\n", b"220 2.0.0 Ready to start TLS\r\n", 300)
        pair = _TlsPair(certs, keylog, version)
        for from_client, data in pair.handshake():
            flow.send(from_client, data, 300)
        for from_client, data in dialogue:
            flow.send(from_client, pair.send(from_client, data), 300)
        flow.close(True)
        tls_steps += flow.steps

    def records(steps: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        out, now = [], 1_700_000_000_000_000
        for delay, frame in steps:
            now += delay
            out.append((now, frame))
        return out

    clear, tls = directory / "clear.pcap", directory / "starttls.pcap"
    write_pcap(clear, iter(records(clear_steps)))
    write_pcap(tls, iter(records(tls_steps)))
    return clear, tls, keylog


def measure(path: Path, keylog: Path | None) -> tuple[float, int, int]:
    """CPU seconds to read the capture, messages found, bytes of the file."""
    keys = None
    if keylog is not None:
        keys = KeyLog(keylog)
        keys.refresh()
    start = time.process_time()
    pipeline = Pipeline(keylog=keys)
    with open_capture(str(path)) as reader:
        messages = sum(len(s.transactions) for s in pipeline.run(reader))
    return time.process_time() - start, messages, path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--message-kb", type=int, default=1024)
    parser.add_argument("--version", choices=["1.2", "1.3"], default="1.3")
    parser.add_argument("--keep", type=Path, help="write the captures into this folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        clear, tls, keylog = build(directory, args.sessions, args.message_kb, args.version)
        t_clear, m_clear, size_clear = measure(clear, None)
        t_tls, m_tls, size_tls = measure(tls, keylog)
    if m_tls != m_clear:
        print(f"MISMATCH: {m_clear} messages in clear, {m_tls} decrypted", file=sys.stderr)
        return 1
    mb = args.sessions * args.message_kb / 1024
    print(f"{args.sessions} sessions, {args.message_kb} KB message each, TLS {args.version}")
    print(f"messages read: {m_clear} in clear, {m_tls} decrypted")
    print(f"clear:     {t_clear:6.2f} s CPU  {mb / t_clear:6.1f} MB/s  ({size_clear} bytes)")
    print(f"decrypted: {t_tls:6.2f} s CPU  {mb / t_tls:6.1f} MB/s  ({size_tls} bytes)")
    print(f"ratio:     {t_tls / t_clear:.2f}x (target: at most 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
