"""TEST ONLY: client byte streams of small public captures, read naively with scapy."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import TCP
from scapy.packet import Raw
from scapy.utils import rdpcap


def client_stream(path: Path, port: int = 25) -> bytes:
    """The client->server bytes of every connection to `port`, in sequence order."""
    flows: dict[int, dict[int, bytes]] = {}
    for pkt in rdpcap(str(path)):
        if TCP in pkt and pkt[TCP].dport == port and Raw in pkt:
            flows.setdefault(pkt[TCP].sport, {}).setdefault(pkt[TCP].seq, bytes(pkt[Raw].load))
    out = bytearray()
    for segs in flows.values():
        items = sorted(segs.items())
        end = items[0][0]
        for seq, data in items:
            if seq + len(data) > end:
                out += data[max(0, end - seq) :]
                end = seq + len(data)
    return bytes(out)
