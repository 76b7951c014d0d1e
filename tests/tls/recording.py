"""Real TLS sessions on loopback, recorded byte for byte per direction by a relay.

    client -> Relay (127.0.0.1:relay.port) -> server (127.0.0.1:target)

The relay keeps every chunk it forwards, in the order it forwarded them across both directions,
so a test can feed a `TlsConnection` as the pipeline would after TCP reassembly.
"""

from __future__ import annotations

import socket
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


def _wait_accept(server: subprocess.Popen[bytes]) -> None:
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
    cert, key = make_cert(tmp, kind)
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-rev", "-naccept", "1", *server_args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    keylog = tmp / f"keys-{port}.log"
    try:
        _wait_accept(server)
        with Relay(port) as relay:
            client = subprocess.Popen(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{relay.port}", "-quiet",
                 "-keylogfile", str(keylog), "-servername", "mail.example.test", *client_args],
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
        server.wait(20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return OpensslSession(relay, keylog, lines + b"CLOSE\n", received)
