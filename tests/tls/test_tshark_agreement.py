"""Agreement with Wireshark: the same real sessions written to a pcap and decrypted by
`tshark -o tls.keylog_file:KEYS -z follow,tls,raw` give the same plaintext per direction."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from mailsniff.protocols.base import Direction
from mailsniff.tls import KeyLog
from tests.tls.recording import decrypt, python_session

C, S = Direction.CLIENT, Direction.SERVER


def _write_pcap(path: Path, chunks: list[tuple[Direction, bytes]], port: int) -> None:
    """A TCP connection 10.0.0.1:40000 -> 10.0.0.2:port carrying the recorded chunks."""
    ends = {C: ("10.0.0.1", 40000, "10.0.0.2", port), S: ("10.0.0.2", port, "10.0.0.1", 40000)}
    seq = {C: 1000, S: 5000}

    def pkt(d: Direction, flags: str, payload: bytes = b"") -> Ether:
        src, sport, dst, dport = ends[d]
        p = (
            Ether()
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq[d], ack=seq[d.other])
            / payload
        )
        seq[d] += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return p

    packets = [pkt(C, "S")]
    packets.append(pkt(S, "SA"))
    packets.append(pkt(C, "A"))
    for d, data in chunks:
        for pos in range(0, len(data), 1460):
            packets.append(pkt(d, "PA", data[pos : pos + 1460]))
    packets += [pkt(C, "FA"), pkt(S, "FA"), pkt(C, "A")]
    for i, p in enumerate(packets):
        p.time = 1_700_000_000 + i / 1000
    wrpcap(str(path), packets)


def _tshark_follow(pcap: Path, keylog: Path, port: int) -> dict[Direction, bytes]:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by scripts/test.sh"
    out = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-d", f"tcp.port=={port},tls",
         "-o", f"tls.keylog_file:{keylog}", "-q", "-z", "follow,tls,raw,0"],
        capture_output=True, check=True, timeout=120,
    ).stdout.decode()  # fmt: skip
    plain = {C: bytearray(), S: bytearray()}
    # Lines of node 0 are flush left, those of node 1 indented; node 0 is whichever side
    # tshark saw first in the TLS stream (here it may name the server).
    node0 = out.split("Node 0:", 1)[1].split("\n", 1)[0].strip()
    first = S if node0.endswith(f":{port}") else C
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    for line in body.splitlines():
        if not line.strip() or line.startswith("="):
            continue
        d = first.other if line.startswith("\t") else first
        plain[d] += bytes.fromhex(line.strip())
    return {d: bytes(v) for d, v in plain.items()}


@pytest.mark.parametrize(
    ("version", "ciphers"),
    [("1.3", None), ("1.2", "ECDHE-RSA-AES128-SHA256"), ("1.2", "ECDHE-RSA-CHACHA20-POLY1305")],
)
def test_same_plaintext_as_tshark(tmp_path: Path, version: str, ciphers: str | None) -> None:
    s = python_session(tmp_path, os.urandom(5_000), os.urandom(40_000), version=version,
                       ciphers=ciphers)  # fmt: skip
    keylog = KeyLog(s.keylog)
    keylog.refresh()
    ours = decrypt(s.relay.chunks, keylog)
    assert ours.conn.info.decrypted, ours.conn.info.problems
    pcap = tmp_path / "session.pcap"
    _write_pcap(pcap, s.relay.chunks, 465)
    theirs = _tshark_follow(pcap, s.keylog, 465)
    assert theirs[C] == ours.plain[C] == s.client_sent
    assert theirs[S] == ours.plain[S] == s.server_sent
