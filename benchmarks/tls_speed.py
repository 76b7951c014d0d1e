"""Measure TLS decryption throughput (MB/s of plaintext) per cipher suite.

Usage: PYTHONPATH=. python benchmarks/tls_speed.py [--mb 20] [--write 16384] [--suite NAME ...]

For each suite a real session is made by Python's `ssl` (OpenSSL) in memory (two SSLObjects
joined by MemoryBIOs, in a child process whose OPENSSL_CONF forces the TLS 1.3 suite): the
server sends --mb MB in writes of --write bytes (16 KB: full records; 1 KB: the
small records of an interactive protocol), the client 1 MB. Its bytes and key log are then fed to
`mailsniff.tls.TlsConnection` in 64 KB chunks, as reassembled TCP would be. The rate is plaintext
MB per CPU second of this process (time.process_time), decryption and record parsing only.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (label, TLS version, OpenSSL cipher string or TLS 1.3 suite)
SUITES = [
    ("TLS_AES_128_GCM_SHA256", "1.3", "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "1.3", "TLS_AES_256_GCM_SHA384"),
    ("TLS_CHACHA20_POLY1305_SHA256", "1.3", "TLS_CHACHA20_POLY1305_SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "1.2", "ECDHE-RSA-CHACHA20-POLY1305"),
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA (encrypt-then-MAC)", "1.2", "ECDHE-RSA-AES128-SHA"),
    ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 (encrypt-then-MAC)", "1.2", "ECDHE-RSA-AES256-SHA384"),
]

_CONF = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Ciphersuites = {suites}
"""


def make_session(version: str, cipher: str, mb: int, write: int, workdir: Path) -> Path:
    """Record one session in a child process; returns the pickle (chunks, key log text)."""
    conf = workdir / "openssl.cnf"
    suites = cipher if version == "1.3" else "TLS_AES_128_GCM_SHA256"
    conf.write_text(_CONF.format(suites=suites))
    out = workdir / "session.pickle"
    env = dict(os.environ, OPENSSL_CONF=str(conf))
    subprocess.run(
        [sys.executable, __file__, "--child", version, cipher, str(mb), str(write), str(out)],
        check=True, env=env, timeout=600,
    )  # fmt: skip
    return out


def _child(version: str, cipher: str, mb: int, write: int, out: Path) -> None:
    import ssl  # here: after OPENSSL_CONF is set

    workdir = out.parent
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    keylog = workdir / "keys.log"
    cctx.keylog_filename = str(keylog)
    for ctx in (sctx, cctx):
        ctx.minimum_version = ctx.maximum_version = tls
        if version == "1.2":
            ctx.set_ciphers(cipher)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    chunks: list[tuple[str, bytes]] = []

    def pump() -> None:
        data = c_out.read()
        if data:
            chunks.append(("client", data))
            s_in.write(data)
        data = s_out.read()
        if data:
            chunks.append(("server", data))
            c_in.write(data)

    for _ in range(20):
        for obj in (client, server):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    block = os.urandom(write)

    def send(sender: ssl.SSLObject, receiver: ssl.SSLObject, total: int) -> None:
        sent = 0
        while sent < total:
            sender.write(block)
            sent += len(block)
            pump()
            try:
                while receiver.read(65536):
                    pass
            except ssl.SSLWantReadError:
                pass
            pump()

    send(client, server, 1024 * 1024)
    send(server, client, mb * 1024 * 1024)
    if client.version() != ("TLSv1.3" if version == "1.3" else "TLSv1.2"):
        raise SystemExit(f"negotiated {client.version()}")
    out.write_bytes(pickle.dumps((chunks, keylog.read_text(), client.cipher())))


def measure(path: Path) -> tuple[str, float, int, float]:
    from mailsniff.protocols.base import Direction
    from mailsniff.tls import KeyLog, TlsConnection, TlsData

    chunks, keylog_text, _ = pickle.loads(path.read_bytes())
    keylog = KeyLog()
    keylog.add_text(keylog_text)
    pieces = []
    for name, data in chunks:
        d = Direction(name)
        for pos in range(0, len(data), 65536):
            pieces.append((d, data[pos : pos + 65536]))
    conn = TlsConnection(keylog)
    plain = 0
    start = time.process_time()
    for i, (d, data) in enumerate(pieces):
        for e in conn.feed(i, d, data):
            if isinstance(e, TlsData):
                plain += len(e.data)
    conn.close(len(pieces))
    seconds = time.process_time() - start
    info = conn.info
    if not info.decrypted:
        raise SystemExit(f"not decrypted: {info.problems}")
    return info.cipher_suite_name or "?", plain / 1e6, info.records_decrypted, seconds


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20, help="MB the server sends (default 20)")
    parser.add_argument("--write", type=int, default=16384, help="bytes per write (16384)")
    parser.add_argument("--suite", action="append", help="only suites whose name contains this")
    args = parser.parse_args()
    print(f"{'suite':58} {'MB':>6} {'records':>8} {'MB/s':>8}")
    for label, version, cipher in SUITES:
        if args.suite and not any(s in label for s in args.suite):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = make_session(version, cipher, args.mb, args.write, Path(tmp))
            name, mb, count, seconds = measure(path)
        assert label.startswith(name), (label, name)
        print(f"{label:58} {mb:6.1f} {count:8d} {mb / seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
