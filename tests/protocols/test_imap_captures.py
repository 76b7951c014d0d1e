"""The IMAP parser on public captures, checked against what Zeek and Suricata publish for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.inet import TCP
from scapy.packet import Raw
from scapy.utils import rdpcap

from mailsniff.protocols.imap import (
    Anomaly,
    AuthResult,
    Capabilities,
    Command,
    Completion,
    Expunged,
    Fetch,
    Greeting,
    ImapParser,
    MailboxSelected,
    MessageData,
    MessageEnd,
    MessageStart,
    Store,
    TlsStarted,
)
from tests.helpers import C, S, Step, feed_all_ways
from tests.paths import PUBLIC

ZEEK = PUBLIC / "zeek"


def tcp_steps(path: Path, port: int = 143) -> list[Step]:
    """Both directions' payloads of the (single) connection to `port`, in capture order,
    retransmitted bytes dropped (TEST ONLY: naive, for small captures)."""
    steps: list[Step] = []
    expected: dict[Any, int] = {}
    for pkt in rdpcap(str(path)):
        if TCP not in pkt:
            continue
        tcp = pkt[TCP]
        if port not in (tcp.sport, tcp.dport):
            continue
        direction = C if tcp.dport == port else S
        if tcp.flags & 0x02:  # SYN
            expected[direction] = tcp.seq + 1
            continue
        data = bytes(pkt[Raw].load) if Raw in pkt else b""
        if not data:
            continue
        start = expected.get(direction, tcp.seq)
        if tcp.seq + len(data) <= start:
            continue  # retransmission
        data = data[max(0, start - tcp.seq) :]
        expected[direction] = max(start, tcp.seq) + len(data)
        steps.append((direction, data))
    return steps


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_zeek_imap_starttls() -> None:
    events = feed_all_ways(ImapParser, tcp_steps(ZEEK / "imap-starttls.pcap"), (MessageData,))
    # Zeek's imap-capabilities baseline: the capability list of the untagged CAPABILITY answer.
    published = (ZEEK / "imap-starttls.zeek.imap-capabilities.stdout").read_text().splitlines()[-1]
    expected = [c.strip() for c in published.strip("[]").split(",")]
    caps = of(events, Capabilities)
    assert [c.source for c in caps] == ["greeting", "untagged"]
    assert list(caps[1].capabilities) == expected
    assert caps[1].has("STARTTLS") and caps[1].auth_mechanisms == ("LOGIN", "PLAIN")
    # Zeek's starttls baseline: "Tls started for connection".
    assert "Tls started" in (ZEEK / "imap-starttls.zeek.imap-starttls.stdout").read_text()
    assert [c.name for c in of(events, Command)] == ["CAPABILITY", "STARTTLS"]
    assert [(c.tag, c.status) for c in of(events, Completion)] == [(".", "OK"), (".", "OK")]
    assert len(of(events, TlsStarted)) == 1 and isinstance(events[-1], TlsStarted)
    assert of(events, Anomaly) == []


def test_suricata_imap_detection_exchange_session() -> None:
    path = PUBLIC / "suricata-verify" / "imap-detection.pcap"
    events = feed_all_ways(ImapParser, tcp_steps(path), (MessageData,), examples=5)
    assert of(events, Anomaly) == []
    assert "Microsoft Exchange IMAP4rev1" in of(events, Greeting)[0].text
    assert of(events, Capabilities)[0].auth_mechanisms == ("NTLM",)
    login = of(events, AuthResult)[0]
    assert (login.method, login.user, login.secret, login.success) == (
        "LOGIN",
        "neulingern",
        "XXXXXX",
        True,
    )
    first, second = of(events, MailboxSelected)
    assert (first.mailbox, first.exists, first.recent) == ("INBOX", 13, 13)
    assert "\\Deleted" in first.permanent_flags
    assert (second.exists, second.recent) == (12, 0)
    starts = of(events, MessageStart)
    headers = [s for s in starts if s.section.startswith("HEADER.FIELDS")]
    assert [s.seq for s in headers[:13]] == list(range(1, 14))
    assert not any(s.whole for s in headers)
    whole = [s for s in starts if s.item == "RFC822"]
    assert [(s.seq, s.size, s.whole, s.mailbox) for s in whole] == [(12, 3339, True, "INBOX")]
    body = b"".join(e.data for e in of(events, MessageData) if e.message_id == whole[0].message_id)
    assert len(body) == 3339 and body.startswith(b"Received: from smtp.umr.edu")
    assert all(e.complete for e in of(events, MessageEnd))
    fetch_1 = of(events, Fetch)[0]
    assert (fetch_1.seq, fetch_1.size, fetch_1.flags) == (1, 2059, ("\\Seen", "\\Recent"))
    assert fetch_1.internaldate == "11-Nov-1999 08:36:54 -0600"
    stores = [(s.messages, s.operation, s.silent, s.flags) for s in of(events, Store)]
    assert stores == [
        ("4", "+", True, ("\\Seen", "\\Deleted")),
        ("4", "-", True, ("\\Flagged", "\\Answered")),
    ]
    assert [(e.seq, e.mailbox) for e in of(events, Expunged)] == [(4, "INBOX")]
    assert all(c.command is not None and c.ok for c in of(events, Completion))
