"""suricata-verify captures: the smtp, pop3, fileinfo and anomaly events its test.yaml checks want.

Where the yaml's version gates disagree the newest behaviour (>= 8.0.7) is the one followed: an
SMTP transaction is completed by the server's reply and there is no trailing QUIT transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import cache
from typing import Any

import pytest

from mailsniff.status import ExitStatus
from tests.cli_runner import read_json
from tests.data.make_equivalents import xls_standin
from tests.paths import EQUIVALENTS, PUBLIC

SV = PUBLIC / "suricata-verify"
# Upstream's copies carry malware: tests/data/make_equivalents.py builds harmless stand-ins.
LEFT_OUT = {"smtp-data-rejected", "smtp-to-comma", "smtp-errors"}
POP3_VERBS = {"USER", "PASS", "APOP", "AUTH", "CAPA", "STAT", "LIST", "UIDL", "TOP", "RETR"}
POP3_VERBS |= {"DELE", "RSET", "NOOP", "STLS", "QUIT"}


@cache
def sessions(stem: str, *extra: str, status: int = 0) -> tuple[dict[str, Any], ...]:
    folder = EQUIVALENTS if stem in LEFT_OUT else SV
    return tuple(read_json(folder / f"{stem}.pcap", *extra, status=status))


def only(stem: str, *extra: str, status: int = 0) -> dict[str, Any]:
    [session] = sessions(stem, *extra, status=status)
    return session


def by_client_port(stem: str, port: int, *extra: str) -> dict[str, Any]:
    [session] = [s for s in sessions(stem, *extra) if s["client"]["port"] == port]
    return session


def with_message(session: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in session["transactions"] if t["message"] is not None]


def header(message: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in message["headers"] if key.lower() == name.lower()]


def commands(session: dict[str, Any]) -> Counter[str]:
    words = (
        line["text"].split(" ", 1)[0].upper()
        for line in session["transcript"]
        if line["direction"] == "client"
    )
    return Counter(w for w in words if w in POP3_VERBS)


def server_lines_after(session: dict[str, Any], command: str) -> list[str]:
    """The server's lines answering the first client line `command`, up to the next client line."""
    lines = session["transcript"]
    start = next(
        i
        for i, line in enumerate(lines)
        if line["direction"] == "client" and line["text"] == command
    )
    out = []
    for line in lines[start + 1 :]:
        if line["direction"] == "client":
            break
        out.append(line["text"])
    return out


# --- bug-3616-smtp (the Wireshark wiki smtp.pcap) -------------------------------------------


def test_bug_3616_envelope_and_helo() -> None:
    s = only("bug-3616-smtp")
    assert s["client"] == {"ip": "10.10.1.4", "port": 1470}
    assert s["server"] == {"ip": "74.53.140.153", "port": 25}
    assert s["helo"] == "GP"
    [tx] = s["transactions"]  # >= 8.0.7: one transaction, no trailing QUIT one
    assert tx["mail_from"] == "gurpartap@patriots.in"
    assert tx["rcpt_to"][0] == "raj_deol2002in@yahoo.co.in"
    # lua-output-smtp: FROM <gurpartap@patriots.in> TO {<raj_deol2002in@yahoo.co.in>}
    assert tx["rcpt_to"] == ["raj_deol2002in@yahoo.co.in"]


def test_bug_3616_headers_subject_md5_and_attachment() -> None:
    message = only("bug-3616-smtp")["transactions"][0]["message"]
    assert message["from"] == [{"name": "Gurpartap Singh", "address": "gurpartap@patriots.in"}]
    assert message["to"][0]["address"] == "raj_deol2002in@yahoo.co.in"
    subject_md5 = hashlib.md5(message["subject"].encode()).hexdigest()
    assert subject_md5 == "c2239a92bde29f0a9f9173193cc2fe00"
    [attachment] = message["attachments"]
    assert attachment["filename"] == "NEWS.txt"
    assert attachment["size"] == 10807
    # email.body_md5 is Suricata's hash of its own body buffer: no counterpart in our output


@pytest.mark.xfail(
    strict=True,
    reason="flow event: pkts_toserver 28 + pkts_toclient 29 = 57 packets (tshark agrees); "
    "mailsniff session packets 51: the 4 retransmitted 1452-byte segments (frames 32, 33, 35, "
    "36) and the 2 ACKs after both FINs (frames 58, 59) are not counted",
)
def test_bug_3616_flow_packet_count() -> None:
    assert only("bug-3616-smtp")["packets"] == 28 + 29


# --- smtp-data-rejected / smtp-to-comma ------------------------------------------------------


def test_data_rejected_attachment_sha256_and_received_header() -> None:
    s = only("smtp-data-rejected")
    [tx] = with_message(s)
    [attachment] = tx["message"]["attachments"]
    assert attachment["filename"] == "doc_S1800389114_H0060086.xls"
    # the stand-in's harmless attachment (upstream's malicious .xls: 2f4e7dba...8e0a)
    assert attachment["sha256"] == hashlib.sha256(xls_standin()).hexdigest()
    expected = (
        "from [65.201.218.30] (helo=COZOXORY.club)by 173-66-46-112.wash.fios.verizon.net with "
        "esmtpa (Exim 4.86)(envelope-from )id 71cF63a9for mirjam@abrakadabra.ch; Mon, 29 Jul 2019 "
        "17:01:45 +0000"
    )
    [received] = header(tx["message"], "Received")
    # Suricata drops the folding whitespace entirely; we unfold (keep the tab): compare without it
    assert re.sub(r"\s+", "", received) == re.sub(r"\s+", "", expected)


def test_data_rejected_pipelined_refusals_then_virus_rejection() -> None:
    refused, retried = only("smtp-data-rejected")["transactions"]
    assert refused["mail_from_reply"].startswith("553 ")
    assert refused["rcpt_accepted"] == [] and refused["data_reply"].startswith("503 ")
    assert retried["mail_from_reply"].startswith("250 ")
    assert retried["data_reply"] == "554 5.7.1 Message contains virus: rejected."


def test_to_comma_cc_with_quoted_comma_and_no_to() -> None:
    s = only("smtp-to-comma", status=ExitStatus.TRUNCATED)
    [tx] = with_message(s)
    assert tx["message"]["cc"] == [
        {"name": "jam,abrakadabra.ch", "address": "mirjam@abrakadabra.ch"}
    ]
    assert tx["message"]["to"] == []  # "do not log empty fields": not-has-key email.to


# --- smtp-errors -----------------------------------------------------------------------------

INVALID_REPLY = {
    49274: None,  # 500 5.5.1 Command unrecognized: + junk on a new line
    49448: None,  # "4.7.0 [IPTS04] Messages from ... deferred" without a reply code
    49740: None,  # "472 ...": second digit 7 is outside RFC 5321's x0z-x5z
    50649: None,  # port 465 server speaking cleartext, 402/400 to a TLS ClientHello
}


@pytest.mark.parametrize(
    "port",
    [pytest.param(p, marks=m or ()) for p, m in INVALID_REPLY.items()],
    ids=[str(p) for p in INVALID_REPLY],
)
def test_errors_invalid_replies_are_anomalies(port: int) -> None:
    s = by_client_port("smtp-errors", port)
    assert s["anomalies"], "Suricata logs an INVALID_REPLY anomaly for this flow"
    assert any(f["kind"] == "anomaly" for f in s["findings"])


def test_errors_cleartext_server_on_port_465_is_parsed() -> None:
    s = by_client_port("smtp-errors", 50649)
    assert s["banner"] == "220 v02.kerne.org ESMTP Postfix"
    assert s["tls"] is False


def test_errors_472_sender_refusal() -> None:
    s = by_client_port("smtp-errors", 49740)
    [tx] = s["transactions"]
    assert tx["mail_from"] == "unusualz@prg-dc.dhl.com"
    assert tx["mail_from_reply"] == "472 unusualz@prg-dc.dhl.com DNS A-record is empty"
    assert any(f["kind"] == "sender-rejected" for f in s["findings"])


# --- smtp-rfc2231, mime-quoted-printable, smtp-bug-5981: fileinfo -----------------------------


def test_rfc2231_continued_filename() -> None:
    [tx] = with_message(only("smtp-rfc2231"))
    names = [a["filename"] for a in tx["message"]["attachments"]]
    assert names == [
        "smtptest-2021-02-25T13-54-22Z-"
        "aefb2fc1308d62f4b6c74769f69b13ddf80e995fd98ae442f3be499ea928c67f..zip"
    ]


def test_quoted_printable_patch_attachment() -> None:
    [tx] = with_message(only("mime-quoted-printable"))
    [patch] = [a for a in tx["message"]["attachments"] if a["filename"] == "related.patch"]
    assert patch["size"] == 34224
    assert patch["sha256"] == "359641873610597882317aee0f72104ed54fe8aa82d6fa323a5418e4529bd3b9"


def test_bug_5981_winmail_dat_and_envelope() -> None:
    s = only("smtp-bug-5981")
    assert s["client"] == {"ip": "192.168.1.4", "port": 3326}
    assert s["server"] == {"ip": "217.12.11.66", "port": 587}
    assert s["helo"] == "Percival"
    [tx] = s["transactions"]
    assert tx["mail_from"] == "xxxxxx@xxxxx.co.uk"
    assert tx["rcpt_to"][0] == "xxxxxx@xxxxx.co.uk"
    message = tx["message"]
    assert message["from"] == [{"name": "Xxxxxx xxxx", "address": "xxxxxx@xxxxx.co.uk"}]
    assert message["to"][0]["address"] == "xxxxxx@xxxxx.co.uk"
    assert header(message, "X-Mailer") == ["Microsoft Office Outlook, Build 11.0.5510"]
    [winmail] = [a for a in message["attachments"] if a["filename"] == "winmail.dat"]
    assert winmail["size"] == 10451
    assert winmail["sha256"] == "5f41c213e35d8421647181cc9b8925a5b2ab34c23102907581214fd574157fff"


def test_bug_5981_long_data_line_is_not_an_anomaly() -> None:
    # no TRUNCATED_LINE anomaly for the hand-made 6512-byte DATA line; what the capture does
    # hold is later copies of the DATA segments with other bytes: overlap conflicts
    s = only("smtp-bug-5981")
    conflicts = [a for a in s["anomalies"] if a.startswith("overlap-conflict: ")]
    assert conflicts == s["anomalies"]
    assert [c.split(" captured")[0] for c in conflicts] == [
        "overlap-conflict: 1460 client bytes at offset 1581",
        "overlap-conflict: 1460 client bytes at offset 3041",
        "overlap-conflict: 1460 client bytes at offset 4501",
        "overlap-conflict: 618 client bytes at offset 5961",
    ]
    assert [f["kind"] for f in s["findings"]].count("overlap-conflict") == 4


# --- smtp-pipelining, smtp-bdat-pipelined-next-mail, mime-dec-parse-full-msg-test02 ------------


def test_pipelining_one_parsed_transaction() -> None:
    [tx] = only("smtp-pipelining")["transactions"]
    assert tx["mail_from"] == "username@domain.com"
    assert tx["rcpt_to"] == ["john.doe@example.com"]
    assert tx["message"] is not None  # email.status PARSE_DONE


def test_bdat_pipelined_next_mail_two_envelopes() -> None:
    s = only("smtp-bdat-pipelined-next-mail")
    first, second = s["transactions"]
    assert (first["mail_from"], first["rcpt_to"]) == ("alice@example.com", ["bob@example.com"])
    assert first["body_command"] == "BDAT"
    assert first["data_reply"].startswith("250 2.0.0 Ok: 216 bytes queued as ")
    assert first["message"]["size"] == 216
    assert (second["mail_from"], second["rcpt_to"]) == ("bob@example.com", ["alice@example.com"])
    assert second["mail_from_reply"] == "250 2.1.0 Ok"
    assert [r["reply"] for r in second["rcpts"]] == ["250 2.1.5 Ok"]
    assert [a["address"] for a in second["message"]["from"]] == ["bob@example.com"]
    assert [a["address"] for a in second["message"]["to"]] == ["alice@example.com"]
    assert s["anomalies"] == []  # no BDAT_CHUNK_LEN_EXCEEDED or other anomaly


def test_mime_full_msg_headers() -> None:
    s = only("mime-dec-parse-full-msg-test02")
    assert s["client"] == {"ip": "127.0.0.1", "port": 39202}
    assert s["helo"] == "linuxbox"
    [tx] = s["transactions"]
    assert tx["mail_from"] == "toto@gmail.com"
    assert tx["rcpt_to"] == ["172.16.92.2@linuxbox"]
    message = tx["message"]
    assert message["from"] == [{"name": "toto", "address": "toto@gmail.com"}]
    assert message["to"][0]["address"] == "172.16.92.2@linuxbox"
    assert message["subject"] == "This is a test email"
    assert message["date"] == "Fri, 21 Apr 2023 05:10:36 +0000"


# --- POP3 -----------------------------------------------------------------------------------


def test_pop3_mailbox_sync_events() -> None:
    s = only("pop3", "--transcript")
    assert s["server"]["ip"] == "74.208.5.11"
    assert s["banner"] == "+OK POP server ready H mieueus020 1Mw7UO-1j88qA02mS-00sOH0"
    [auth] = s["auth"]
    assert auth["mechanism"] == "USER"
    assert auth["username"] == "moises.nunez@ingenierianumar.com"
    assert auth["success"] is True
    assert server_lines_after(s, "USER moises.nunez@ingenierianumar.com") == [
        '+OK password required for user "moises.nunez@ingenierianumar.com"'
    ]
    # 56 pop3 events: the greeting and 55 commands
    assert commands(s) == Counter(
        {"USER": 1, "PASS": 1, "STAT": 1, "LIST": 1, "RSET": 1, "UIDL": 1, "TOP": 49}
    )
    assert len(s["mailbox_stats"]) == 1
    assert len(s["messages"]) == 49
    assert all(m["command"].startswith("TOP ") and m["partial"] for m in s["messages"])


def test_pop3_bug_7709_failed_and_accepted_pass() -> None:
    attempts = [a for s in sessions("pop3-02-bug-7709") for a in s["auth"]]
    assert sorted((a["success"], a["reply"]) for a in attempts) == [
        (False, "-ERR the password incorrect"),
        (True, "+OK "),
    ]


def test_pop3_bug_7709_list_uidl_and_quit() -> None:
    s = by_client_port("pop3-02-bug-7709", 38572, "--transcript")
    assert server_lines_after(s, "LIST") == [
        "+OK 5 21639",
        "1 247",
        "2 6668",
        "3 6668",
        "4 1388",
        "5 6668",
        ".",
    ]
    uidl = server_lines_after(s, "UIDL")
    assert uidl[1:6] == [f"{n} test.tt.com.cmailserver.{n}" for n in range(1, 6)]
    quits = [
        server_lines_after(session, "QUIT")[0]
        for session in sessions("pop3-02-bug-7709", "--transcript")
    ]
    assert len(quits) == 2 and all(q.startswith("+OK") for q in quits)


def test_pop3_auth_xoauth2() -> None:
    s = only("pop3-auth-01", "--transcript")
    assert s["client"] == {"ip": "1.1.1.1", "port": 5555}
    assert s["server"] == {"ip": "2.2.2.2", "port": 110}
    assert s["capabilities"] == [
        "USER",
        "RESP-CODES",
        "EXPIRE 0",
        "LOGIN-DELAY 300",
        "TOP",
        "UIDL",
        "X-GOOGLE-RICO",
        "SASL PLAIN XOAUTH2 OAUTHBEARER",
    ]
    [auth] = s["auth"]
    assert auth["mechanism"] == "XOAUTH2"
    assert auth["success"] is True
    assert auth["reply"] == "+OK Welcome."
    assert auth["password"]  # the bearer token, the secret of XOAUTH2
    assert auth["response"] is None
    assert "cleartext-credentials" in [f["kind"] for f in s["findings"]]
    assert s["mailbox_stats"] == [{"messages": 1, "octets": 308661}]
    assert server_lines_after(s, "LIST")[:2] == ["+OK 1 messages (308661 bytes)", "1 308661"]
    assert server_lines_after(s, "UIDL")[1] == "1 GmailId123456789"
    assert commands(s)["QUIT"] == 1
