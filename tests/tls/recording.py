"""Real TLS sessions on loopback, recorded byte for byte per direction by a relay.

    client -> Relay (127.0.0.1:relay.port) -> server (127.0.0.1:target)

The relay keeps every chunk it forwards, in the order it forwarded them across both directions,
so a test can feed a `TlsConnection` as the pipeline would after TCP reassembly.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mailsniff.protocols.base import Direction
from mailsniff.tls import KeyLog, TlsConnection, TlsData, TlsEvent
from tests.servers import free_port


class Relay:
    """Forwards one connection to `target` and records it; use as a context manager."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.chunks: list[tuple[Direction, bytes]] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pumps: list[threading.Thread] = []

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()

    def wait(self, timeout: float = 20) -> None:
        self._thread.join(timeout)
        for pump in self._pumps:
            pump.join(timeout)
        self._listener.close()

    def _run(self) -> None:
        self._listener.settimeout(20)
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.target), timeout=20)
        for src, dst, d in ((client, server, Direction.CLIENT), (server, client, Direction.SERVER)):
            pump = threading.Thread(target=self._pump, args=(src, dst, d), daemon=True)
            pump.start()
            self._pumps.append(pump)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        src.settimeout(20)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    self.chunks.append((direction, data))
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stream(self, direction: Direction) -> bytes:
        return b"".join(data for d, data in self.chunks if d is direction)


@dataclass
class Decrypted:
    events: list[TlsEvent]
    conn: TlsConnection
    plain: dict[Direction, bytes] = field(default_factory=dict)


def decrypt(chunks: list[tuple[Direction, bytes]], keylog: KeyLog, **kw: bool) -> Decrypted:
    conn = TlsConnection(keylog, **kw)
    events: list[TlsEvent] = []
    for i, (direction, data) in enumerate(chunks):
        events += conn.feed(1_000 + i, direction, data)
    events += conn.close(9_999)
    plain = {
        d: b"".join(e.data for e in events if isinstance(e, TlsData) and e.direction is d)
        for d in Direction
    }
    return Decrypted(events, conn, plain)


def make_cert(directory: Path, kind: str = "rsa") -> tuple[Path, Path]:
    cert, key = directory / f"{kind}-cert.pem", directory / f"{kind}-key.pem"
    if not cert.exists():
        newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else [
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # fmt: skip
        subprocess.run(
            ["openssl", "req", "-x509", *newkey, "-nodes", "-days", "2", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    return cert, key


def wait_accept(server: subprocess.Popen[bytes]) -> None:
    """Wait for s_server's "ACCEPT" (a probe connection would use up its -naccept 1)."""
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith(b"ACCEPT"):
            break
    else:
        raise RuntimeError("openssl s_server exited before listening")
    out = server.stdout
    threading.Thread(target=out.read, daemon=True).start()


@dataclass
class OpensslSession:
    relay: Relay
    keylog: Path
    sent: bytes  # what the client application sent
    received: bytes  # what the client application received (s_client's output)


def openssl_session(
    tmp: Path, client_args: list[str], server_args: list[str], *, kind: str = "rsa",
    lines: bytes = b"hello world\nsecond line, a bit longer to fill a record\n",
    commands: Sequence[bytes] = (),
) -> OpensslSession:  # fmt: skip
    """`openssl s_client` -> relay -> `openssl s_server -rev` (echoes each line reversed)."""
    return openssl_sessions(tmp, [client_args], server_args, kind=kind, lines=lines,
                            commands=commands)[0]  # fmt: skip


def openssl_sessions(
    tmp: Path, clients: list[list[str]], server_args: list[str], *, kind: str = "rsa",
    lines: bytes = b"hello world\nsecond line, a bit longer to fill a record\n",
    commands: Sequence[bytes] = (),
) -> list[OpensslSession]:  # fmt: skip
    """One `openssl s_server -rev`, one `s_client` connection per entry of `clients`, one after
    the other (e.g. a session saved with -sess_out, then resumed with -sess_in)."""
    cert, key = make_cert(tmp, kind)
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-rev", "-naccept", str(len(clients)), *server_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out = []
    try:
        wait_accept(server)
        for n, client_args in enumerate(clients):
            keylog = tmp / f"keys-{port}-{n}.log"
            with Relay(port) as relay:
                client = subprocess.Popen(
                    ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-quiet",
                     "-keylogfile", str(keylog), "-servername", "mail.example.test",
                     *client_args],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                )  # fmt: skip
                assert client.stdin is not None
                client.stdin.write(lines)
                client.stdin.flush()
                time.sleep(0.3)
                for command in commands:  # s_client commands ("K": KeyUpdate) or more lines
                    client.stdin.write(command)
                    client.stdin.flush()
                    time.sleep(0.3)
                client.stdin.write(b"CLOSE\n")
                client.stdin.close()
                assert client.stdout is not None
                received = client.stdout.read()
                client.wait(20)
            out.append(OpensslSession(relay, keylog, lines + b"CLOSE\n", received))
        server.wait(20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return out


@dataclass
class PythonSession:
    relay: Relay
    keylog: Path
    client_sent: bytes
    server_sent: bytes


def python_session(
    tmp: Path, client_data: bytes, server_data: bytes, *, version: str = "1.3",
    ciphers: str | None = None, keylog: Path | None = None,
) -> PythonSession:  # fmt: skip
    """Python `ssl` client (with `keylog_filename`) -> relay -> Python `ssl` server: each side
    sends its data, reads the other's completely, then closes with close_notify."""
    cert, key = make_cert(tmp, "rsa")
    tls_version = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.minimum_version = server_ctx.maximum_version = tls_version
    if ciphers:
        server_ctx.set_ciphers(ciphers)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(20)
    errors: list[BaseException] = []

    def read_exactly(conn: ssl.SSLSocket, n: int) -> bytes:
        got = bytearray()
        while len(got) < n:
            data = conn.recv(n - len(got))
            if not data:
                break
            got += data
        return bytes(got)

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with server_ctx.wrap_socket(raw, server_side=True) as conn:
                assert read_exactly(conn, len(client_data)) == client_data
                conn.sendall(server_data)
                conn.unwrap()
        except BaseException as e:  # reported by the test
            errors.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    keylog = keylog or tmp / "python-keys.log"
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.minimum_version = client_ctx.maximum_version = tls_version
    client_ctx.keylog_filename = str(keylog)
    if ciphers:
        client_ctx.set_ciphers(ciphers)
    with Relay(listener.getsockname()[1]) as relay:
        raw = socket.create_connection(("127.0.0.1", relay.port), timeout=20)
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(client_data)
            assert read_exactly(conn, len(server_data)) == server_data
            conn.unwrap()
    thread.join(20)
    listener.close()
    assert not errors, errors
    return PythonSession(relay, keylog, client_data, server_data)


def records(stream: bytes) -> list[tuple[int, int, int]]:
    """(offset, content type, total length incl. header) of each record of a clean stream."""
    out = []
    pos = 0
    while pos + 5 <= len(stream):
        size = 5 + int.from_bytes(stream[pos + 3 : pos + 5], "big")
        out.append((pos, stream[pos], size))
        pos += size
    return out


def replay(
    chunks: list[tuple[Direction, bytes]], keylog: KeyLog, *, direction: Direction,
    stream: bytes | None = None, cut: tuple[int, int] | None = None, **kw: bool,
) -> Decrypted:  # fmt: skip
    """Feed `chunks` in their order, with `direction`'s bytes replaced by `stream` (same length)
    and the bytes [start, end) of that direction reported lost with `gap()` (if `cut`)."""
    conn = TlsConnection(keylog, **kw)
    events: list[TlsEvent] = []
    pos = 0
    for i, (d, data) in enumerate(chunks):
        if d is not direction:
            events += conn.feed(i, d, data)
            continue
        end = pos + len(data)
        own = stream[pos:end] if stream is not None else data
        if cut is not None and cut[0] < end and cut[1] > pos:
            lo, hi = max(cut[0], pos) - pos, min(cut[1], end) - pos
            events += conn.feed(i, d, own[:lo])
            if cut[0] >= pos:
                events += conn.gap(i, d, cut[1] - cut[0])
            events += conn.feed(i, d, own[hi:])
        else:
            events += conn.feed(i, d, own)
        pos = end
    events += conn.close(10**6)
    plain = {
        d: b"".join(e.data for e in events if isinstance(e, TlsData) and e.direction is d)
        for d in Direction
    }
    return Decrypted(events, conn, plain)
