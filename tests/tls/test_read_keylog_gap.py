"""A TLS record lost in the capture: the decrypted dialogue has a gap from that point, with a
clear reason, and nothing is made up (pcaps/starttls-keylog.pcap with one packet removed)."""

from __future__ import annotations

import json
from pathlib import Path

from scapy.layers.inet import TCP
from scapy.utils import rdpcap, wrpcap

from tests.cli_runner import PCAPS, read_json


def test_a_lost_record_inside_tls_is_a_gap_with_its_reason(tmp_path: Path) -> None:
    packets = rdpcap(str(PCAPS / "starttls-keylog.pcap"))
    # The client's largest application-data record after the handshake: the message (DATA).
    data = [
        i for i, p in enumerate(packets)
        if TCP in p and p[TCP].dport == 2525 and bytes(p[TCP].payload)[:1] == b"\x17"
    ]  # fmt: skip
    lost = max(data, key=lambda i: len(packets[i][TCP].payload))
    size = len(packets[lost][TCP].payload)
    damaged = tmp_path / "lost-record.pcap"
    wrpcap(str(damaged), [p for i, p in enumerate(packets) if i != lost])
    [s] = read_json(damaged, "--keylog", str(PCAPS / "starttls-keylog.keys"))
    assert [(g["direction"], g["length"]) for g in s["gaps"]] == [("client", size)]
    info = s["tls_info"]
    assert info["decrypted"] is False
    assert "lost" in info["reason"] and "client" in info["reason"]
    undecrypted = [a for a in s["anomalies"] if a.startswith("tls-undecrypted: client")]
    assert undecrypted and "the rest of that direction is a gap" in undecrypted[0]
    # What came before the loss is read; the message itself was never decrypted: not made up.
    assert [a["username"] for a in s["auth"]] == ["alice"]
    [tx] = s["transactions"]
    assert tx["mail_from"] == "alice@example.com"
    assert tx["message"] is None or tx["message"]["truncated"] or tx["message"]["gap_bytes"]
    assert "read back with the key log" not in json.dumps(s)
    # The server's side is whole: its reply to the message is still read.
    assert tx["data_reply"] is not None and tx["data_reply"].startswith("250")


def test_a_corrupted_record_fails_its_tag_check_and_is_reported_where(tmp_path: Path) -> None:
    packets = rdpcap(str(PCAPS / "starttls-keylog.pcap"))
    data = [
        i for i, p in enumerate(packets)
        if TCP in p and p[TCP].dport == 2525 and bytes(p[TCP].payload)[:1] == b"\x17"
    ]  # fmt: skip
    hit = max(data, key=lambda i: len(packets[i][TCP].payload))
    payload = bytearray(bytes(packets[hit][TCP].payload))
    payload[40] ^= 0x01  # one bit inside the ciphertext of the message's record
    packets[hit][TCP].remove_payload()
    packets[hit][TCP].add_payload(bytes(payload))
    del packets[hit][TCP].chksum
    damaged = tmp_path / "corrupted-record.pcap"
    wrpcap(str(damaged), packets)
    [s] = read_json(damaged, "--keylog", str(PCAPS / "starttls-keylog.keys"))
    info = s["tls_info"]
    assert info["decrypted"] is False
    [failure] = info["failures"]
    assert failure["direction"] == "client" and failure["offset"] > 0
    assert "failed authentication" in info["reason"]
    assert any("failed authentication" in a for a in s["anomalies"])
    assert "read back with the key log" not in json.dumps(s)  # never decrypted, never guessed
