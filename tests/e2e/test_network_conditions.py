"""E2E: session records do not depend on how the network carried the bytes (RFC 9293, 791, 8200).

The seed's smtp.163.com and pop.163.com dialogues (bytes taken from pcaps/seed-telnet.pcap), the
SMTP one with an extra message carrying a ~100 KB base64 attachment, are rebuilt as captures under
each condition; every session record must equal the clean capture's except for the fields that
describe the carriage itself.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable
from dataclasses import replace
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import PCAPS, read_json
from tests.e2e import synth
from tests.e2e.synth import Conn, Seg, Step

#: Fields that legitimately differ with the carriage: endpoints, times, completeness, packets.
#: `id` is the session's number in its file (it differs when a file holds several connections);
#: `community_id` and `uid` are computed from the endpoints (and the start time).
VARYING = {
    "client",
    "server",
    "community_id",
    "uid",
    "start",
    "end",
    "complete",
    "gaps",
    "packets",
    "handshake_seen",
    "close_reason",
    "id",
}
#: Lists whose entries carry a capture `time`.
TIMED = ("auth", "transactions", "messages")

ATTACHMENT = random.Random(163).randbytes(75_000)  # 100,000 bytes once base64-encoded


def normalised(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k not in VARYING}
    for key in TIMED:
        out[key] = [{k: v for k, v in entry.items() if k != "time"} for entry in out[key]]
    return out


def big_message() -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "crazywill@163.com"
    msg["To"] = "crazywill@163.com"
    msg["Subject"] = "quarterly report"
    msg["Date"] = "Mon, 3 Jul 2006 21:08:00 +0800"
    msg["Message-ID"] = "<report.20060703@163.com>"
    msg.set_content("The report is attached.\n")
    msg.add_attachment(
        ATTACHMENT, maintype="application", subtype="octet-stream", filename="report.bin"
    )
    msg.set_boundary("----=_Part_163_report")
    data = msg.as_bytes()
    assert not any(line.startswith(b".") for line in data.split(b"\r\n"))  # no dot-stuffing
    return data


def smtp_dialogue() -> list[Step]:
    """The seed's smtp.163.com dialogue with a second accepted message before NOOP."""
    steps = synth.dialogue_from_pcap(PCAPS / "seed-telnet.pcap", 32874)
    noop = steps.index(("c", b"NOOP\r\n"))
    extra: list[Step] = [
        ("c", b"MAIL FROM:<crazywill@163.com>\r\n"),
        ("s", b"250 Mail OK\r\n"),
        ("c", b"RCPT TO:<crazywill@163.com>\r\n"),
        ("s", b"250 Mail OK\r\n"),
        ("c", b"DATA\r\n"),
        ("s", b"354 Please start mail input.\r\n"),
        ("c", big_message() + b".\r\n"),
        ("s", b"250 Mail OK queued as smtp10,report\r\n"),
    ]
    return steps[:noop] + extra + steps[noop:]


SMTP_STEPS = smtp_dialogue()
POP3_STEPS = synth.dialogue_from_pcap(PCAPS / "seed-telnet.pcap", 32875)
BODY = max((data for _, data in SMTP_STEPS), key=len)  # the big message, as one client write


def smtp_conn(**kw: Any) -> Conn:
    return Conn(**kw)


def pop3_conn(**kw: Any) -> Conn:
    base: dict[str, Any] = {
        "client_port": 32875,
        "server_port": 110,
        "server_ip": "202.108.5.104",
        "client_isn": 0x7D01E9B3,
        "server_isn": 0x2C44A17E,
    }
    return Conn(**{**base, **kw})


def both(
    *,
    smtp_steps: list[Step] = SMTP_STEPS,
    pop3_steps: list[Step] = POP3_STEPS,
    smtp: dict[str, Any] | None = None,
    pop3: dict[str, Any] | None = None,
    **kw: Any,
) -> list[Seg]:
    """The SMTP connection, then the POP3 one, with the same tcp_segments options."""
    return synth.tcp_segments(smtp_steps, smtp_conn(**(smtp or {})), **kw) + synth.tcp_segments(
        pop3_steps, pop3_conn(**(pop3 or {})), **kw
    )


def write(path: Path, segs: list[Seg], link: str = "ether", **kw: Any) -> Path:
    return synth.write_pcap(path, synth.frames(segs, link), linktype=synth.LINKTYPES[link], **kw)


def by_protocol(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert sorted(r["protocol"] for r in records) == ["pop3", "smtp"]
    return {r["protocol"]: r for r in records}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = write(tmp_path_factory.mktemp("ref") / "clean.pcap", both())
    return by_protocol(read_json(path))


def test_clean_capture_reproduces_the_seed_sessions_and_the_big_message(
    reference: dict[str, dict[str, Any]],
) -> None:
    seed = by_protocol(
        [r for r in read_json(PCAPS / "seed-telnet.pcap") if r["client"]["port"] in (32874, 32875)]
    )
    assert normalised(reference["pop3"]) == normalised(seed["pop3"])
    smtp = reference["smtp"]
    assert smtp["complete"] and smtp["handshake_seen"] and smtp["close_reason"] == "fin"
    assert normalised(smtp)["auth"] == normalised(seed["smtp"])["auth"]
    assert normalised(smtp)["transactions"][:2] == normalised(seed["smtp"])["transactions"]
    big = smtp["transactions"][2]
    assert (big["mail_from"], big["rcpt_accepted"]) == ("crazywill@163.com", ["crazywill@163.com"])
    assert big["data_reply"] == "250 Mail OK queued as smtp10,report"
    message = big["message"]
    assert message["subject"] == "quarterly report"
    assert message["size"] == len(BODY) - 3  # without the final ".\r\n"
    assert message["sha256"] == hashlib.sha256(BODY[:-3]).hexdigest()
    assert message["attachments"] == [
        {
            "filename": "report.bin",
            "content_type": "application/octet-stream",
            "size": len(ATTACHMENT),
            "sha256": hashlib.sha256(ATTACHMENT).hexdigest(),
            "disposition": "attachment",
        }
    ]
    assert len(base64.b64encode(ATTACHMENT)) == 100_000


# --- lossless conditions: same records ---------------------------------------------------


def one_byte_commands(side: str, data: bytes) -> list[int]:
    """The client's commands one byte per segment; the big message and replies in MSS segments."""
    if side == "c" and len(data) <= 10_000:
        return [1] * len(data)
    return synth.by_size(1460)(side, data)


def fragment_big(i: int, seg: Seg) -> bool:
    return len(seg.payload) > 1000 and i % 2 == 0


def one_byte_both_ways(side: str, data: bytes) -> list[int]:
    """Both sides' writes one byte per segment, except the big message."""
    return synth.by_size(1460)(side, data) if len(data) > 10_000 else [1] * len(data)


def reordered(segs: list[Seg], seed: int, window: int) -> list[Seg]:
    out = synth.shuffled(segs, seed, window)
    assert [id(s) for s in out] != [id(s) for s in segs]
    return out


def keepalives(stale: bytes) -> list[Seg]:
    """A probe after every acknowledged write (RFC 9293 3.8.4), re-sending its last byte's
    sequence number with `stale` instead of that byte."""
    plain = both()
    segs = synth.with_keepalives(plain, stale)
    assert len(segs) - len(plain) > 40
    return segs


def handshake_twice() -> list[Seg]:
    """SYN and SYN-ACK each captured twice (a retransmission after a lost SYN-ACK)."""
    smtp = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    pop3 = synth.tcp_segments(POP3_STEPS, pop3_conn())
    return [x for c in (smtp, pop3) for x in [c[0], c[0], c[1], c[1], *c[2:]]]


def wrapping() -> list[Seg]:
    """ISNs near 2**32: the client's sequence number wraps inside the big message."""
    segs = both(
        smtp={"client_isn": 2**32 - 5000, "server_isn": 2**32 - 300},
        pop3={"client_isn": 2**32 - 30, "server_isn": 2**32 - 2000},
    )
    body = [s for s in segs if s.side == "c" and len(s.payload) == 1460]
    assert any(b.seq < a.seq for a, b in zip(body, body[1:], strict=False))
    return segs


def fragmented() -> list[bytes]:
    """Every other big data segment as IPv4 fragments, last fragment first."""
    frames = synth.frames(both(), fragment=fragment_big)
    offsets = [int.from_bytes(f[20:22], "big") & 0x1FFF for f in frames]  # Ether + IPv4
    assert sum(1 for o in offsets if o) > 20
    return frames


Build = Callable[[Path], Path]

LOSSLESS: dict[str, Build] = {
    "one-byte-commands": lambda p: write(p, both(cut=one_byte_commands)),
    "random-segment-sizes": lambda p: write(p, both(cut=synth.random_sizes(7))),
    "mss-536": lambda p: write(p, both(mss=536)),
    "pipelined-few-segments": lambda p: write(
        p,
        both(
            smtp_steps=synth.pipelined(SMTP_STEPS),
            pop3_steps=synth.pipelined(POP3_STEPS),
            mss=65000,
        ),
    ),
    "one-byte-both-ways": lambda p: write(p, both(cut=one_byte_both_ways)),
    "out-of-order": lambda p: write(p, reordered(both(cut=synth.random_sizes(11, 1, 600)), 3, 8)),
    "one-byte-out-of-order": lambda p: write(p, reordered(both(cut=one_byte_commands), 5, 6)),
    "duplicates": lambda p: write(p, synth.duplicated(both(mss=536), every=3)),
    "overlapping-retransmissions": lambda p: write(p, synth.overlapping(both(mss=536), every=2)),
    "overlap-duplicate-reorder": lambda p: write(
        p, reordered(synth.duplicated(synth.overlapping(both(mss=536), 3), 4), 9, 5)
    ),
    "keepalive-probes-with-a-stale-byte": lambda p: write(p, keepalives(b"\0")),
    "keepalive-probes-empty": lambda p: write(p, keepalives(b"")),
    "seq-wraps-in-data": lambda p: write(p, wrapping()),
    "ipv4-fragments-out-of-order": lambda p: synth.write_pcap(p, fragmented()),
    "ipv6": lambda p: write(
        p,
        both(
            smtp={"ipv6": True, "client_ip": "2001:db8::100", "server_ip": "2001:db8:163::81"},
            pop3={"ipv6": True, "client_ip": "2001:db8::100", "server_ip": "2001:db8:163::104"},
        ),
    ),
    "ipv6-qinq": lambda p: write(
        p,
        both(
            smtp={"ipv6": True, "client_ip": "2001:db8::100", "server_ip": "2001:db8:163::81"},
            pop3={"ipv6": True, "client_ip": "2001:db8::100", "server_ip": "2001:db8:163::104"},
        ),
        "qinq",
    ),
    "802.1q": lambda p: write(p, both(), "dot1q"),
    "qinq": lambda p: write(p, both(), "qinq"),
    "linux-sll": lambda p: write(p, both(), "sll"),
    "linux-sll2": lambda p: write(p, both(), "sll2"),
    "raw-ip": lambda p: write(p, both(), "raw"),
    "bsd-null": lambda p: write(p, both(), "null"),
    "pcapng": lambda p: synth.write_pcapng(p, synth.frames(both())),
    "nanosecond-pcap": lambda p: write(p, both(), nano=True),
    "gzip-pcap": lambda p: write(p, both(), compress=True),
    "gzip-pcapng": lambda p: synth.write_pcapng(p, synth.frames(both()), compress=True),
    "rst-close": lambda p: write(p, both(close="rst")),
    "fin-on-the-last-reply": lambda p: write(p, both(close="fin-data")),
    "handshake-retransmitted": lambda p: write(p, handshake_twice()),
    "identical-timestamps": lambda p: write(p, both(), step_ns=0),
    "tcp-timestamp-options": lambda p: synth.write_pcap(
        p, synth.frames(both(cut=one_byte_commands), tcp_timestamps=True)
    ),
    "ethernet-padding": lambda p: synth.write_pcap(
        p, synth.frames(both(cut=one_byte_commands), min_size=60)
    ),
    "ethernet-fcs-trailer": lambda p: synth.write_pcap(
        p, synth.frames(both(cut=one_byte_commands), trailer=b"\xde\xad\xbe\xef")
    ),
}


@pytest.mark.parametrize("condition", list(LOSSLESS))
def test_session_records_equal_the_clean_capture(
    condition: str, tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    records = by_protocol(read_json(LOSSLESS[condition](tmp_path / f"{condition}.pcap")))
    for protocol in ("smtp", "pop3"):
        assert normalised(records[protocol]) == normalised(reference[protocol]), protocol
        assert records[protocol]["gaps"] == []
        assert records[protocol]["complete"] is True


def test_rst_close_is_reported_as_rst(tmp_path: Path) -> None:
    records = by_protocol(read_json(LOSSLESS["rst-close"](tmp_path / "rst.pcap")))
    assert {r["close_reason"] for r in records.values()} == {"rst"}


def test_reused_four_tuple_gives_two_sessions_each_like_the_reference(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    again = {"client_isn": 0x11111111, "server_isn": 0x22222222}
    segs = (
        synth.tcp_segments(SMTP_STEPS, smtp_conn())
        + synth.tcp_segments(SMTP_STEPS, smtp_conn(**again))
        + synth.tcp_segments(POP3_STEPS, pop3_conn())
        + synth.tcp_segments(POP3_STEPS, pop3_conn(**again))
    )
    records = read_json(write(tmp_path / "reuse.pcap", segs))
    assert [r["protocol"] for r in records] == ["smtp", "smtp", "pop3", "pop3"]
    for r in records:
        assert normalised(r) == normalised(reference[r["protocol"]])
        assert r["complete"] and r["close_reason"] == "fin"
    assert records[0]["end"] <= records[1]["start"]


def test_forty_interleaved_connections_give_forty_reference_records(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """20 SMTP and 20 POP3 copies from different client ports, packets interleaved."""
    conns = [
        synth.tcp_segments(
            SMTP_STEPS,
            smtp_conn(client_port=40000 + n, client_isn=0x01000000 * n + 7),
            mss=536 if n % 2 else 1460,
        )
        for n in range(20)
    ] + [
        synth.tcp_segments(POP3_STEPS, pop3_conn(client_port=41000 + n), cut=synth.random_sizes(n))
        for n in range(20)
    ]
    records = read_json(write(tmp_path / "forty.pcap", synth.interleave(conns)))
    ports = sorted(r["client"]["port"] for r in records)
    assert ports == [*range(40000, 40020), *range(41000, 41020)]
    for r in records:
        assert normalised(r) == normalised(reference[r["protocol"]]), r["client"]["port"]
        assert r["complete"] is True


# --- conditions that lose data ---------------------------------------------------------------


def transcript_texts(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["direction"], line["text"]) for line in record["transcript"]]


def test_missing_segment_inside_data_is_a_gap_and_the_rest_still_parses(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    body = [s for s in segs if s.side == "c" and len(s.payload) == 1460]
    lost = body[len(body) // 2]
    path = write(tmp_path / "lost-data.pcap", [s for s in segs if s is not lost])
    (record,) = read_json(path, "--transcript")
    length = len(lost.payload)
    assert record["gaps"] == [{"direction": "client", "offset": lost.offset, "length": length}]
    assert record["complete"] is False
    assert "gap" in [f["kind"] for f in record["findings"]]
    ref = reference["smtp"]
    assert normalised(record)["auth"] == normalised(ref)["auth"]
    assert normalised(record)["transactions"][:2] == normalised(ref)["transactions"][:2]
    tx, ref_tx = record["transactions"][2], ref["transactions"][2]
    for key in ("mail_from", "mail_from_reply", "rcpt_to", "rcpt_accepted", "data_reply", "bcc"):
        assert tx[key] == ref_tx[key], key
    assert tx["message"] is not None
    assert tx["message"]["subject"] == "quarterly report"
    assert tx["message"]["gap_bytes"] == length
    lines = transcript_texts(record)
    tail = [("client", "NOOP"), ("server", "250 OK"), ("client", "QUIT")]
    assert lines[-4:-1] == tail
    assert lines[-1] == ("server", "221 Closing connection. Good bye.")


def test_lost_smtp_reply_leaves_the_recipient_unknown_and_the_rest_parsed(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    replies = [s for s in segs if s.side == "s" and s.payload == b"250 Mail OK\r\n"]
    lost = replies[1]  # the answer to the first RCPT TO:<crazywill@163.com>
    (record,) = read_json(write(tmp_path / "lost-reply.pcap", [s for s in segs if s is not lost]))
    assert record["gaps"] == [{"direction": "server", "offset": lost.offset, "length": 13}]
    assert record["complete"] is False
    ref = normalised(reference["smtp"])
    got = normalised(record)
    assert got["auth"] == ref["auth"]
    assert got["transactions"][0] == ref["transactions"][0]
    assert got["transactions"][2] == ref["transactions"][2]
    tx, ref_tx = got["transactions"][1], ref["transactions"][1]
    for key in (
        "mail_from",
        "mail_from_reply",
        "rcpt_to",
        "rcpt_accepted",
        "data_reply",
        "message",
    ):
        assert tx[key] == ref_tx[key], key
    assert tx["rcpts"][0]["reply"] is None
    assert tx["rcpts"][0]["status"] == "unknown"


def test_lost_pop3_reply_leaves_messages_and_stats_parsed(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    segs = synth.tcp_segments(POP3_STEPS, pop3_conn())
    dele = next(i for i, s in enumerate(segs) if s.payload == b"DELE 254\r\n")
    lost = next(s for s in segs[dele:] if s.side == "s" and s.payload)
    assert lost.payload == b"+OK core mail\r\n"
    (record,) = read_json(write(tmp_path / "lost-pop.pcap", [s for s in segs if s is not lost]))
    assert record["gaps"] == [{"direction": "server", "offset": lost.offset, "length": 15}]
    ref = normalised(reference["pop3"])
    got = normalised(record)
    for key in ("auth", "messages", "mailbox_stats", "banner"):
        assert got[key] == ref[key], key


def test_lost_middle_of_a_pop3_listing_leaves_messages_and_stats_parsed(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    segs = synth.tcp_segments(POP3_STEPS, pop3_conn(), mss=536)
    listing = [s for s in segs if s.side == "s" and len(s.payload) == 536]
    lost = listing[1]
    (record,) = read_json(write(tmp_path / "lost-list.pcap", [s for s in segs if s is not lost]))
    assert record["gaps"] == [{"direction": "server", "offset": lost.offset, "length": 536}]
    ref = normalised(reference["pop3"])
    got = normalised(record)
    for key in ("auth", "messages", "mailbox_stats", "deleted"):
        assert got[key] == ref[key], key


def test_lost_end_of_a_pop3_retr_leaves_the_message_and_what_follows(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """The RETR answer's final '.' CRLF travels alone and is lost; the client's DELE shows the
    answer was over."""

    def cut(side: str, data: bytes) -> list[int]:
        if data.startswith(b"+OK 354 octets"):
            return [len(data) - 3, 3]
        return synth.by_size(1460)(side, data)

    segs = synth.tcp_segments(POP3_STEPS, pop3_conn(), cut)
    (lost,) = [s for s in segs if s.side == "s" and s.payload == b".\r\n"]
    (record,) = read_json(
        write(tmp_path / "lost-retr-end.pcap", [s for s in segs if s is not lost])
    )
    assert record["gaps"] == [{"direction": "server", "offset": lost.offset, "length": 3}]
    ref = reference["pop3"]
    retr = record["messages"][1]
    assert retr["command"] == "RETR 254"
    for key in ("from", "to", "subject", "message_id", "sender", "size", "sha256"):
        assert retr["message"][key] == ref["messages"][1]["message"][key], key
    assert record["deleted"] == [254]
    assert record["mailbox_stats"] == ref["mailbox_stats"]


def test_capture_starting_mid_connection_still_reports_the_transactions(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    first = next(i for i, s in enumerate(segs) if s.payload.startswith(b"MAIL FROM:"))
    (record,) = read_json(write(tmp_path / "mid.pcap", segs[first:]))
    assert record["protocol"] == "smtp"
    assert record["handshake_seen"] is False
    assert record["complete"] is False
    assert record["close_reason"] == "fin"
    assert record["gaps"] == []  # offsets count from the first byte seen
    ref = normalised(reference["smtp"])
    assert normalised(record)["transactions"] == ref["transactions"]


def test_capture_starting_inside_data_fabricates_nothing_and_parses_what_follows(
    tmp_path: Path,
) -> None:
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    body = [i for i, s in enumerate(segs) if len(s.payload) == 1460]
    (record,) = read_json(write(tmp_path / "mid-data.pcap", segs[body[30] :]), "--transcript")
    assert record["handshake_seen"] is False
    assert record["transactions"] == []
    assert record["auth"] == []
    assert transcript_texts(record)[-4:] == [
        ("client", "NOOP"),
        ("server", "250 OK"),
        ("client", "QUIT"),
        ("server", "221 Closing connection. Good bye."),
    ]


def lose_inside_message_id(tmp_path: Path) -> tuple[dict[str, Any], Seg]:
    """The big message cut so that 10 bytes in the middle of its Message-ID travel alone; lost."""
    pos = BODY.index(b"Message-ID: <re") + len(b"Message-ID: <re")

    def cut(side: str, data: bytes) -> list[int]:
        if data is not BODY:
            return synth.by_size(1460)(side, data)
        return [pos, 10, *synth.by_size(1460)(side, data[pos + 10 :])]

    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn(), cut)
    (lost,) = [s for s in segs if s.payload == BODY[pos : pos + 10]]
    (record,) = read_json(write(tmp_path / "lost-header.pcap", [s for s in segs if s is not lost]))
    return record, lost


def test_gap_inside_a_header_keeps_the_envelope_and_the_attachment(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    record, lost = lose_inside_message_id(tmp_path)
    assert record["gaps"] == [{"direction": "client", "offset": lost.offset, "length": 10}]
    tx, ref_tx = record["transactions"][2], reference["smtp"]["transactions"][2]
    for key in ("mail_from", "rcpt_to", "rcpt_accepted", "data_reply", "bcc", "header_only"):
        assert tx[key] == ref_tx[key], key
    assert tx["message"]["gap_bytes"] == 10
    assert tx["message"]["attachments"] == ref_tx["message"]["attachments"]
    assert tx["message"]["subject"] == "quarterly report"


def test_gap_inside_a_header_does_not_splice_a_header_value(tmp_path: Path) -> None:
    record, _ = lose_inside_message_id(tmp_path)
    message_id = record["transactions"][2]["message"]["message_id"]
    assert message_id is None or "<report.20060703@163.com>".startswith(message_id)


def lose_end_of_data(tmp_path: Path) -> tuple[dict[str, Any], Seg]:
    """The big message's final '.' CRLF travels alone and is lost."""

    def cut(side: str, data: bytes) -> list[int]:
        if data is not BODY:
            return synth.by_size(1460)(side, data)
        return [*synth.by_size(1460)(side, data[:-3]), 3]

    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn(), cut)
    (lost,) = [s for s in segs if s.payload == b".\r\n" and s.offset > len(BODY)]
    path = write(tmp_path / "lost-end.pcap", [s for s in segs if s is not lost])
    (record,) = read_json(path, "--transcript")
    return record, lost


def test_lost_end_of_data_marker_keeps_envelope_and_attachment(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    record, lost = lose_end_of_data(tmp_path)
    assert record["gaps"] == [{"direction": "client", "offset": lost.offset, "length": 3}]
    tx, ref_tx = record["transactions"][2], reference["smtp"]["transactions"][2]
    for key in ("mail_from", "rcpt_to", "rcpt_accepted", "bcc", "header_only"):
        assert tx[key] == ref_tx[key], key
    assert tx["message"]["attachments"] == ref_tx["message"]["attachments"]


def test_lost_end_of_data_marker_the_server_reply_ends_the_message(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    record, _ = lose_end_of_data(tmp_path)
    tx, ref_tx = record["transactions"][2], reference["smtp"]["transactions"][2]
    assert tx["data_reply"] == ref_tx["data_reply"]
    assert tx["message"]["size"] == ref_tx["message"]["size"]
    assert transcript_texts(record)[-4:] == [
        ("client", "NOOP"),
        ("server", "250 OK"),
        ("client", "QUIT"),
        ("server", "221 Closing connection. Good bye."),
    ]


def snaplen_200(tmp_path: Path, *extra: str) -> dict[str, dict[str, Any]]:
    return by_protocol(read_json(write(tmp_path / "snap.pcap", both(), snaplen=200), *extra))


def test_snaplen_200_reports_gaps_and_keeps_the_envelopes(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    records = snaplen_200(tmp_path)
    smtp, pop3 = records["smtp"], records["pop3"]
    assert not smtp["complete"] and not pop3["complete"]
    assert {g["direction"] for g in smtp["gaps"]} == {"client"}
    assert {g["direction"] for g in pop3["gaps"]} == {"server"}
    assert "gap" in [f["kind"] for f in smtp["findings"]]
    assert "gap" in [f["kind"] for f in pop3["findings"]]
    # every command and reply before the big message fits in 200 bytes
    ref = reference["smtp"]
    assert normalised(smtp)["auth"] == normalised(ref)["auth"]
    assert normalised(smtp)["transactions"][:2] == normalised(ref)["transactions"][:2]
    tx, ref_tx = smtp["transactions"][2], ref["transactions"][2]
    for key in ("mail_from", "mail_from_reply", "rcpt_to", "rcpt_accepted"):
        assert tx[key] == ref_tx[key], key
    assert tx["message"]["gap_bytes"] > 0
    assert normalised(pop3)["auth"] == normalised(reference["pop3"])["auth"]


def test_snaplen_200_server_reply_ends_data_whose_terminator_was_cut(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    smtp = snaplen_200(tmp_path, "--transcript")["smtp"]
    assert (
        smtp["transactions"][2]["data_reply"] == reference["smtp"]["transactions"][2]["data_reply"]
    )
    lines = transcript_texts(smtp)
    assert lines[-4:] == [
        ("client", "NOOP"),
        ("server", "250 OK"),
        ("client", "QUIT"),
        ("server", "221 Closing connection. Good bye."),
    ]


def test_conflicting_retransmission_is_an_overlap_conflict_finding_with_both_hashes(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """A later copy of the RCPT TO with other bytes (the evasion Zeek and Suricata flag): the
    first copy is kept and the conflict is reported with its range and both versions' hashes."""
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    rcpt = next(s for s in segs if s.side == "c" and s.payload.startswith(b"RCPT TO:"))
    forged = rcpt.payload.replace(b"crazywill@163.com", b"attacker1@evil.cn")
    assert len(forged) == len(rcpt.payload) and forged != rcpt.payload
    segs.insert(segs.index(rcpt) + 1, replace(rcpt, payload=forged))
    (record,) = read_json(write(tmp_path / "conflict.pcap", segs))
    ref = normalised(reference["smtp"])
    assert normalised(record)["transactions"] == ref["transactions"]  # the first copy won
    conflicts = [f["detail"] for f in record["findings"] if f["kind"] == "overlap-conflict"]
    assert conflicts == [
        f"{len(forged)} client bytes at offset {rcpt.offset} captured twice with different "
        f"content; the first copy was kept (sha256 {hashlib.sha256(rcpt.payload).hexdigest()}), "
        f"the later one discarded (sha256 {hashlib.sha256(forged).hexdigest()})"
    ]
    assert ["overlap-conflict: " + conflicts[0]] == record["anomalies"]
    assert "anomaly" not in [f["kind"] for f in record["findings"]]


def test_greeting_copies_captured_before_the_syn_ack_leave_the_dialogue_whole(
    tmp_path: Path, reference: dict[str, dict[str, Any]]
) -> None:
    """Copies of the server's first segment with other lengths (a shorter one, and one that
    starts inside it), captured before the SYN-ACK that places them: the greeting and every
    transaction come out as in the clean capture, with no gap."""
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    greeting = next(s for s in segs if s.side == "s" and s.payload)
    copies = [
        replace(greeting, seq=(greeting.seq + 9) % 2**32, payload=greeting.payload[9:30]),
        replace(greeting, payload=greeting.payload[:12]),
    ]
    segs = segs[:1] + copies + segs[1:]
    (record,) = read_json(write(tmp_path / "greeting-copies.pcap", segs))
    assert normalised(record) == normalised(reference["smtp"])
    assert record["gaps"] == [] and record["complete"] is True


def _first_two(segs: list[Seg], side: str) -> tuple[Seg, Seg]:
    first, second = [s for s in segs if s.side == side and s.payload][:2]
    assert second.offset == first.offset + len(first.payload)  # contiguous in the stream
    return first, second


def _copy(first: Seg, skip: int, payload: bytes) -> Seg:
    return replace(
        first, seq=(first.seq + skip) % 2**32, offset=first.offset + skip, payload=payload
    )


def _overlap_variant(segs: list[Seg], side: str, variant: str) -> list[Seg]:
    """The first data segment of `side` retransmitted or delayed in one of several shapes."""
    first, second = _first_two(segs, side)
    segs = list(segs)
    after_second = segs.index(second) + 1
    if variant == "longer-after":  # retransmitted with the start of the next segment
        segs.insert(after_second, _copy(first, 0, first.payload + second.payload[:10]))
    elif variant == "shorter-after":
        segs.insert(after_second, _copy(first, 0, first.payload[:5]))
    elif variant == "overlapping-next":  # starts inside the first, ends inside the second
        segs.insert(after_second, _copy(first, 5, first.payload[5:] + second.payload[:8]))
    elif variant == "split-swapped":  # sent in two pieces, the second captured first
        head, tail = _copy(first, 0, first.payload[:7]), _copy(first, 7, first.payload[7:])
        segs[segs.index(first) : segs.index(first) + 1] = [tail, head]
    elif variant == "first-after-later":  # the original arrives after later segments
        segs.remove(first)
        segs.insert(segs.index(second) + 2, first)
    elif variant == "lost-then-longer":  # only a longer retransmission, after the next one
        segs.remove(first)
        segs.insert(segs.index(second) + 1, _copy(first, 0, first.payload + second.payload[:10]))
    elif variant == "longer-first-then-original":
        segs[segs.index(first)] = _copy(first, 0, first.payload + second.payload[:10])
        segs.insert(segs.index(second) + 1, first)
    else:
        raise AssertionError(variant)
    return segs


OVERLAP_VARIANTS = [
    "longer-after",
    "shorter-after",
    "overlapping-next",
    "split-swapped",
    "longer-first-then-original",
]


@pytest.mark.parametrize("variant", OVERLAP_VARIANTS)
@pytest.mark.parametrize("side", ["s", "c"])
def test_first_segment_overlapped_by_later_copies_keeps_every_transaction(
    tmp_path: Path, reference: dict[str, dict[str, Any]], side: str, variant: str
) -> None:
    """The server's greeting (or the client's EHLO) retransmitted with other lengths, overlapping
    the next segment, or arriving after later segments, with the same bytes: the session is
    the clean capture's, whole and complete, with no gap and nothing flagged."""
    segs = _overlap_variant(synth.tcp_segments(SMTP_STEPS, smtp_conn()), side, variant)
    (record,) = read_json(write(tmp_path / f"{side}-{variant}.pcap", segs))
    assert normalised(record) == normalised(reference["smtp"])
    assert record["gaps"] == [] and record["complete"] is True
    assert record["anomalies"] == []


@pytest.mark.parametrize("side", ["s", "c"])
@pytest.mark.parametrize("where", ["first", "next"])
def test_first_segment_overlapped_with_other_bytes_is_flagged_and_keeps_the_transactions(
    tmp_path: Path, reference: dict[str, dict[str, Any]], side: str, where: str
) -> None:
    """A later, longer copy of the first segment whose bytes differ (inside the first segment,
    or where it overlaps the next one): the first copy wins, the transactions survive, and the
    session says so with an overlap-conflict anomaly and finding (the range is the overlapped
    piece: the whole first segment, or the part of the next one the copy covers)."""
    segs = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    first, second = _first_two(segs, side)
    if where == "first":
        payload = b"X" * 4 + first.payload[4:] + second.payload[:10]
    else:
        payload = first.payload + b"X" * 10
    segs.insert(segs.index(second) + 1, _copy(first, 0, payload))
    (record,) = read_json(write(tmp_path / f"{side}-{where}.pcap", segs))
    assert normalised(record)["transactions"] == normalised(reference["smtp"])["transactions"]
    assert record["banner"] == reference["smtp"]["banner"]
    assert record["helo"] == reference["smtp"]["helo"]
    direction = "server" if side == "s" else "client"
    offset = 0 if where == "first" else len(first.payload)
    [anomaly] = record["anomalies"]
    assert anomaly.startswith(
        f"overlap-conflict: {len(first.payload) if where == 'first' else 10} {direction} bytes "
        f"at offset {offset} "
    )
    assert [f["kind"] for f in record["findings"]].count("overlap-conflict") == 1


@pytest.mark.parametrize("variant", ["first-after-later", "lost-then-longer"])
@pytest.mark.parametrize("side", ["s", "c"])
def test_first_segment_captured_only_after_the_peer_acknowledged_it_is_a_gap_not_a_loss(
    tmp_path: Path, reference: dict[str, dict[str, Any]], side: str, variant: str
) -> None:
    """The first segment captured only after the peer's ACK of it (and after later segments):
    its bytes were declared missing when the ACK passed them, so they are a gap at offset 0 and
    the session is not complete; every transaction after it survives."""
    clean = synth.tcp_segments(SMTP_STEPS, smtp_conn())
    first, _ = _first_two(clean, side)
    segs = _overlap_variant(clean, side, variant)
    (record,) = read_json(write(tmp_path / f"{side}-{variant}.pcap", segs))
    assert normalised(record)["transactions"] == normalised(reference["smtp"])["transactions"]
    assert normalised(record)["auth"] == normalised(reference["smtp"])["auth"]
    direction = "server" if side == "s" else "client"
    assert record["gaps"] == [{"direction": direction, "offset": 0, "length": len(first.payload)}]
    assert record["complete"] is False
    assert "gap" in [f["kind"] for f in record["findings"]]
