"""Every public capture is read to its end, validates, and yields the sessions it holds."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mailsniff.status import ExitStatus
from tests.cli_runner import read_json, run_cli
from tests.jsonschema_check import validate_lines
from tests.paths import EQUIVALENTS, PUBLIC, capture

CAPTURES = sorted(p for p in PUBLIC.glob("*/*") if p.suffix in (".pcap", ".pcapng"))
# Harmless stand-ins for the three malspam captures left out (tests/data/make_equivalents.py)
CAPTURES += sorted(EQUIVALENTS.glob("*.pcap"))

# Mail sessions per capture, from PROVENANCE.md and the flows the other analyzers log
# (Zeek conn.log/smtp.log, Suricata flow/smtp events, Arkime session documents, nDPI flows).
EXPECTED: dict[str, dict[str, int]] = {
    "zeek/smtp.pcap": {"smtp": 2},
    "zeek/smtp-attachment-msg.pcap": {"smtp": 1},
    "zeek/smtp-mail-transactions-invalid.pcap": {"smtp": 1},
    "zeek/smtp-one-side-only.pcap": {"smtp": 1},
    "zeek/rfc3030-bdat-example1.pcap": {"smtp": 1},
    "zeek/rfc3030-bdat-multipart-chunked.pcap": {"smtp": 1},
    "zeek/rfc3030-bdat-nonascii.pcap": {"smtp": 1},
    "zeek/smtp-bdat-pipeline-8bitmime.pcap": {"smtp": 1},
    "zeek/smtp-bdat-gap.pcap": {"smtp": 1},
    "zeek/smtp-bdat-cmd-invalid.pcapng": {"smtp": 3},
    "zeek/smtp-starttls.pcap": {"smtp": 1},
    "zeek/pop3-starttls.pcap": {"pop3": 1},
    "zeek/imap-starttls.pcap": {"imap": 1},
    # 11 connections in conn.log: 6 refused SYNs (REJ) and 5 POP3 dialogues
    "zeek/pop3.pcap": {"pop3": 11},
    "zeek/pop3-bad-list-retr-crafted.pcap": {"pop3": 1},
    "suricata-verify/bug-3616-smtp.pcap": {"smtp": 1},
    "equivalents/smtp-data-rejected.pcap": {"smtp": 1},
    "equivalents/smtp-to-comma.pcap": {"smtp": 1},
    "equivalents/smtp-errors.pcap": {"smtp": 4},
    "suricata-verify/smtp-rfc2231.pcap": {"smtp": 1},
    "suricata-verify/pop3.pcap": {"pop3": 1},
    # the third "session" is a lone RST; Suricata logs 2 pop3 flows
    "suricata-verify/pop3-02-bug-7709.pcap": {"pop3": 2},
    "suricata-verify/pop3-auth-01.pcap": {"pop3": 1},
    "suricata-verify/smtp-pipelining.pcap": {"smtp": 1},
    "suricata-verify/smtp-bdat-pipelined-next-mail.pcap": {"smtp": 1},
    "suricata-verify/mime-quoted-printable.pcap": {"smtp": 1},
    "suricata-verify/mime-dec-parse-full-msg-test02.pcap": {"smtp": 1},
    "suricata-verify/smtp-bug-5981.pcap": {"smtp": 1},
    "suricata-verify/imap-detection.pcap": {"imap": 1},
    "arkime/smtp-subject-8859-q.pcap": {"smtp": 1},
    "arkime/smtp-subject-gb2312-b.pcap": {"smtp": 1},
    "arkime/smtp-subject-utf8-mixed.pcap": {"smtp": 1},
    "arkime/smtp-subject-encoded-empty.pcap": {"smtp": 1},
    "arkime/smtp-subject-windows.pcap": {"smtp": 1},
    "arkime/smtp-zip.pcap": {"smtp": 1},
    "arkime/smtp-decrypted.pcap": {"smtp": 4},
    "arkime/smtp-data-521.pcap": {"smtp": 1},
    "arkime/socks5-smtp-503.pcap": {"smtp": 1},
    "ndpi/smtp-starttls.pcap": {"smtp": 2},
    "ndpi/pop3.pcapng": {"pop3": 6},
}

DAMAGED = {"equivalents/smtp-to-comma.pcap"}

XFAIL: dict[str, pytest.MarkDecorator] = {}


def name(path: Path) -> str:
    base = PUBLIC if path.is_relative_to(PUBLIC) else EQUIVALENTS.parent
    return path.relative_to(base).as_posix()


def status_of(key: str) -> int:
    return ExitStatus.TRUNCATED if key in DAMAGED else ExitStatus.SUCCESS


@cache
def sessions(key: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_json(capture(key), status=status_of(key)))


@cache
def summary(key: str) -> dict[str, Any]:
    proc = run_cli("read", str(capture(key)), "--json")
    assert proc.returncode == status_of(key), proc.stderr
    return validate_lines(proc.stdout)[-1]


@cache
def verification() -> dict[str, tuple[int, int]]:
    """Frames and TCP frames per capture from capinfos / tshark io,phs in VERIFICATION.txt."""
    text = (PUBLIC / "VERIFICATION.txt").read_text()
    parts = re.split(r"^==== (\S+)\n", text, flags=re.M)
    out = {}
    for key, body in zip(parts[1::2], parts[2::2], strict=True):
        found = re.search(r"Number of packets:\s+(\d+)", body) or re.search(
            r"after reading (\d+) packets", body
        )
        assert found, key
        tcp = sum(int(n) for n in re.findall(r"^\s+tcp\s+frames:(\d+)", body, flags=re.M))
        out[key] = (int(found.group(1)), tcp)
    # The stand-ins, by construction: every frame is an Ethernet/IPv4/TCP packet.
    out["equivalents/smtp-data-rejected.pcap"] = (166, 166)
    out["equivalents/smtp-to-comma.pcap"] = (18, 18)
    out["equivalents/smtp-errors.pcap"] = (81, 81)
    return out


def test_the_table_covers_every_public_capture() -> None:
    assert len(CAPTURES) == 37 + 3  # public captures kept, stand-ins for the left-out ones
    assert {name(p) for p in CAPTURES} == set(EXPECTED)


@pytest.mark.parametrize(
    "key",
    [pytest.param(name(p), marks=XFAIL.get(name(p), ())) for p in CAPTURES],
    ids=[name(p) for p in CAPTURES],
)
def test_yields_the_mail_sessions_it_holds(key: str) -> None:
    found = Counter(s["protocol"] for s in sessions(key))
    assert dict(found) == EXPECTED[key]


@pytest.mark.parametrize("key", [name(p) for p in CAPTURES])
def test_every_frame_is_read_and_counted(key: str) -> None:
    frames, tcp = verification()[key]
    got = summary(key)
    assert got["frames"] == frames
    assert got["tcp_segments"] == tcp
    assert got["decode"]["unsupported_linktype"] == {}
    assert got["decode"]["malformed"] == 0
    assert got["sessions"] == len(sessions(key))


def test_damaged_capture_exits_4_after_reporting_what_it_recovered() -> None:
    key = "equivalents/smtp-to-comma.pcap"
    proc = run_cli("read", str(capture(key)), "--json")
    assert proc.returncode == ExitStatus.TRUNCATED
    assert "Traceback" not in proc.stderr
    records = validate_lines(proc.stdout)
    [warning] = records[-1]["warnings"]
    assert "record 19" in warning and "18 records" in warning
    [session] = [r for r in records if r["type"] == "session"]
    assert session["close_reason"] == "eof"
    assert session["complete"] is False


@pytest.mark.parametrize(
    "key",
    [
        "zeek/pop3-starttls.pcap",
        "suricata-verify/smtp-pipelining.pcap",
        "suricata-verify/mime-dec-parse-full-msg-test02.pcap",
    ],
)
def test_null_loopback_link_type(key: str) -> None:
    got = summary(key)
    assert got["decode"]["non_ip"] == 0
    [session] = sessions(key)
    assert session["client"]["ip"] in ("127.0.0.1", "192.168.4.149")
    assert session["banner"] is not None


def test_vlan_tagged_ipv6_session() -> None:
    # ndpiReader: [2003:de:2016:125:fc36:8317:4e86:cb72]:7562 <-> [2003:de:2016:120::a08:53]:25
    # [VLAN: 125] SMTPS (STARTTLS)
    [v6] = [s for s in sessions("ndpi/smtp-starttls.pcap") if ":" in s["client"]["ip"]]
    assert v6["client"] == {"ip": "2003:de:2016:125:fc36:8317:4e86:cb72", "port": 7562}
    assert v6["server"] == {"ip": "2003:de:2016:120::a08:53", "port": 25}
    assert v6["helo"] == "[IPv6:2003:de:2016:125:fc36:8317:4e86:cb72]"
    assert v6["tls"] is True
    # tshark: "Previous segment(s) not captured": client seq 635 jumps to 6395
    assert v6["gaps"] == [{"direction": "client", "offset": 634, "length": 5760}]


def test_ipv6_loopback_session() -> None:
    [session] = sessions("zeek/smtp-attachment-msg.pcap")
    assert session["client"]["ip"] == "::1" and session["server"] == {"ip": "::1", "port": 25}


@pytest.mark.parametrize("key", ["zeek/smtp-bdat-cmd-invalid.pcapng", "ndpi/pop3.pcapng"])
def test_pcapng_files(key: str) -> None:
    assert (PUBLIC / key).read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert all(s["complete"] for s in sessions(key))


def test_corrupted_ethertype_frame_is_counted_not_fatal() -> None:
    # smtp-bug-5981: frame 37 is an over-MTU frame whose Ethernet type was corrupted to 0x7878
    assert summary("suricata-verify/smtp-bug-5981.pcap")["decode"]["non_ip"] == 1
