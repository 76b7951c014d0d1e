"""The captures shipped in pcaps/: the seed note's dialogues, Cc/Bcc, pipelining and CHUNKING."""

from __future__ import annotations

from functools import cache
from typing import Any

from tests.cli_runner import PCAPS, read_json

SEED = PCAPS / "seed-telnet.pcap"
CC_BCC = PCAPS / "cc-bcc-smtplib.pcap"
PIPELINING = PCAPS / "pipelining-bdat.pcap"

MX = "220.181.12.11"  # dialogue 1: server to server
SMTP_163 = "202.108.5.81"  # dialogue 2: client to server with AUTH
POP_163 = "202.108.5.104"  # dialogue 4: POP3


@cache
def sessions(name: str, *extra: str) -> tuple[dict[str, Any], ...]:
    return tuple(read_json(PCAPS / name, *extra))


def seed_session(server_ip: str, *extra: str) -> dict[str, Any]:
    found = [s for s in sessions(SEED.name, *extra) if s["server"]["ip"] == server_ip]
    assert len(found) == 1, f"{len(found)} sessions to {server_ip}"
    return found[0]


def addresses(entries: list[dict[str, str]]) -> list[str]:
    return [a["address"] for a in entries]


def findings(session: dict[str, Any], kind: str) -> list[str]:
    return [f["detail"] for f in session["findings"] if f["kind"] == kind]


def client_commands(session: dict[str, Any]) -> list[str]:
    """First word of every client line that is a POP3 command, upper-cased, from --transcript."""
    verbs = {"USER", "PASS", "APOP", "AUTH", "CAPA", "STAT", "LIST", "UIDL", "TOP", "RETR"}
    verbs |= {"DELE", "RSET", "NOOP", "STLS", "QUIT"}
    words = [
        line["text"].split(" ", 1)[0].upper()
        for line in session["transcript"]
        if line["direction"] == "client" and line["text"]
    ]
    return [w for w in words if w in verbs]


# --- seed-telnet.pcap ------------------------------------------------------------------------


def test_seed_capture_has_the_three_dialogues_of_the_note() -> None:
    seen = sorted(
        (s["server"]["ip"], s["server"]["port"], s["protocol"]) for s in sessions(SEED.name)
    )
    assert seen == sorted([(SMTP_163, 25, "smtp"), (POP_163, 110, "pop3"), (MX, 25, "smtp")])
    assert all(s["complete"] and not s["gaps"] and not s["tls"] for s in sessions(SEED.name))


def test_seed_server_to_server_dialogue() -> None:
    s = seed_session(MX)
    assert s["banner"] == "220 mx.them.com ESMTP Postfix"
    assert s["helo"] == "tylin"
    assert s["auth"] == []
    [tx] = s["transactions"]
    assert tx["mail_from"] == "name@youname.com"
    assert tx["rcpt_to"] == ["tonanme@them.com"]
    assert tx["rcpt_accepted"] == ["tonanme@them.com"]
    assert tx["data_reply"].startswith("250 2.0.0 Ok: queued as")
    assert tx["bcc"] == [] and tx["header_only"] == []
    assert not findings(s, "from-mismatch")  # header From is the envelope sender here


def test_seed_gbk_from_name_decodes_to_zhang_fan() -> None:
    message = seed_session(MX)["transactions"][0]["message"]
    assert message["from"] == [{"name": "张帆", "address": "name@youname.com"}]
    assert message["subject"] == "test"
    assert message["date"] == "Tue, 17 May 2011 10:35:22 +0800 (CST)"


def test_seed_malformed_to_still_yields_the_recipient_address() -> None:
    # To: =?GBK?B?1cW3qw==?= :<tonanme@them.com>
    message = seed_session(MX)["transactions"][0]["message"]
    assert addresses(message["to"]) == ["tonanme@them.com"]


def test_seed_auth_session_banner_and_capabilities() -> None:
    s = seed_session(SMTP_163)
    assert s["banner"] == "220 163.com Coremail SMTP(Anti Spam) System"
    assert s["helo"] == "smtp.163.com"
    assert {"PIPELINING", "8BITMIME"} <= set(s["capabilities"])
    assert any(c.startswith("AUTH") and "LOGIN" in c for c in s["capabilities"])


def test_seed_plain_typed_auth_login_fails_and_is_flagged_not_base64() -> None:
    first = seed_session(SMTP_163)["auth"][0]
    assert first["mechanism"] == "LOGIN"
    assert (first["username"], first["password"]) == ("crazywill", "mypassword")
    assert first["not_base64"] is True
    assert first["success"] is False
    assert first["reply"] == "535 Error: authentication failed"


def test_seed_base64_auth_login_succeeds() -> None:
    s = seed_session(SMTP_163)
    assert len(s["auth"]) == 2
    second = s["auth"][1]
    assert second["mechanism"] == "LOGIN"
    assert (second["username"], second["password"]) == ("crazywill", "mypassword")
    assert second["not_base64"] is False
    assert second["success"] is True
    assert second["reply"] == "235 Authentication successful"
    assert findings(s, "auth-failed") and findings(s, "cleartext-credentials")


def test_seed_553_then_250_mail_from() -> None:
    s = seed_session(SMTP_163)
    refused, accepted = s["transactions"]
    assert refused["mail_from"] == "test@163.com"
    assert refused["mail_from_reply"] == (
        "553 You are not authorized to send mail, authentication is required"
    )
    assert refused["message"] is None
    assert accepted["mail_from"] == "crazywill@163.com"
    assert accepted["mail_from_reply"] == "250 Mail OK"
    assert accepted["rcpt_accepted"] == ["crazywill@163.com"]
    assert accepted["data_reply"] == (
        "250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3"
    )
    assert any("test@163.com" in d for d in findings(s, "sender-rejected"))


def test_seed_forged_header_from_is_a_from_mismatch() -> None:
    s = seed_session(SMTP_163)
    message = s["transactions"][1]["message"]
    assert addresses(message["from"]) == ["cccc@163.com"]
    assert addresses(message["to"]) == ["crazywill@163.com"]
    assert message["subject"] == "test by telnet/smtp"
    [detail] = findings(s, "from-mismatch")
    assert "cccc@163.com" in detail and "crazywill@163.com" in detail


def test_seed_pop3_credentials_and_mailbox_stats() -> None:
    s = seed_session(POP_163)
    assert s["banner"] == "+OK Welcome to coremail Mail Pop3 Server (163com[20050206])"
    [auth] = s["auth"]
    assert auth["mechanism"] == "USER"
    assert (auth["username"], auth["password"]) == ("crazywill", "mypassword")
    assert auth["success"] is True
    assert auth["reply"] == "+OK 254 message(s) [27676669 byte(s)]"
    assert s["mailbox_stats"] == [
        {"messages": 254, "octets": 27676669},
        {"messages": 253, "octets": 27676315},
    ]


def test_seed_pop3_top_is_partial_retr_is_whole_and_dele_is_recorded() -> None:
    s = seed_session(POP_163)
    assert [(m["command"], m["number"], m["partial"]) for m in s["messages"]] == [
        ("TOP 254 0", 254, True),
        ("RETR 254", 254, False),
    ]
    assert s["deleted"] == [254]
    for entry in s["messages"]:
        assert entry["message"]["message_id"] == "<44A91687.0E6F6C.07562>"
        assert entry["message"]["subject"] == "test by telnet/smtp"


def test_seed_pop3_retrieved_message_shows_forged_from_next_to_true_sender() -> None:
    s = seed_session(POP_163)
    retr = s["messages"][1]["message"]
    # "FROM : cccc@163.com" (space before the colon) is obsolete but valid header syntax
    assert addresses(retr["from"]) == ["cccc@163.com"]
    assert addresses(retr["sender"]) == ["crazywill@163.com"]
    assert addresses(retr["to"]) == ["crazywill@163.com"]
    mismatch = findings(s, "from-mismatch")
    assert mismatch and all("crazywill@163.com" in d for d in mismatch)
    assert any("Sender" in d for d in mismatch)


def test_seed_pop3_command_sequence() -> None:
    s = seed_session(POP_163, "--transcript")
    assert client_commands(s) == [
        "USER", "PASS", "STAT", "LIST", "TOP", "RETR", "DELE", "STAT", "QUIT",
    ]  # fmt: skip


# --- cc-bcc-smtplib.pcap ----------------------------------------------------------------------


def test_cc_bcc_envelope_against_headers() -> None:
    [s] = sessions(CC_BCC.name)
    [auth] = s["auth"]
    assert (auth["mechanism"], auth["username"], auth["password"], auth["success"]) == (
        "LOGIN",
        "alice",
        "wonderland",
        True,
    )
    [tx] = s["transactions"]
    assert tx["mail_from"] == "alice@example.com"
    assert tx["rcpt_to"] == ["bob@example.com", "carol@example.com", "dave@example.com"]
    assert tx["rcpt_accepted"] == tx["rcpt_to"]
    message = tx["message"]
    assert message["from"] == [{"name": "Alice Example", "address": "alice@example.com"}]
    assert addresses(message["to"]) == ["bob@example.com"]
    assert addresses(message["cc"]) == ["carol@example.com"]
    assert message["bcc"] == []  # the client removed the Bcc header before sending
    assert tx["bcc"] == ["dave@example.com"]
    assert tx["header_only"] == []
    assert any("dave@example.com" in d for d in findings(s, "bcc"))
    assert not findings(s, "bcc-header-present")


def test_cc_bcc_subject_and_attachment() -> None:
    message = sessions(CC_BCC.name)[0]["transactions"][0]["message"]
    assert message["subject"] == "季度报告 Q3 report"
    [attachment] = message["attachments"]
    assert attachment["filename"] == "report-q3.csv"
    assert attachment["content_type"] == "text/csv"


# --- pipelining-bdat.pcap ---------------------------------------------------------------------


def test_pipelining_rejections_before_authentication() -> None:
    [s] = sessions(PIPELINING.name)
    first = s["transactions"][0]
    assert first["mail_from"] == "test@example.com"
    assert first["mail_from_reply"] == (
        "553 You are not authorized to send mail, authentication is required"
    )
    assert [r["reply"] for r in first["rcpts"]] == ["503 Error: need MAIL command"]
    assert first["rcpt_accepted"] == []
    assert first["data_reply"] == "503 Error: need RCPT command"
    assert first["message"] is None


def test_pipelining_auth_plain_with_initial_response() -> None:
    [auth] = sessions(PIPELINING.name)[0]["auth"]
    assert (auth["mechanism"], auth["username"], auth["password"], auth["success"]) == (
        "PLAIN",
        "alice",
        "wonderland",
        True,
    )


def test_pipelining_per_recipient_replies_and_header_only() -> None:
    s = sessions(PIPELINING.name)[0]
    tx = s["transactions"][1]
    assert tx["mail_from"] == "alice@example.com"
    assert tx["mail_from_params"] == {"BODY": "8BITMIME"}
    assert [(r["address"], r["status"]) for r in tx["rcpts"]] == [
        ("bob@example.com", "accepted"),
        ("nobody@example.com", "rejected"),
    ]
    assert tx["rcpts"][1]["reply"] == "550 5.1.1 no such user"
    assert tx["rcpt_accepted"] == ["bob@example.com"]
    assert tx["header_only"] == ["nobody@example.com"]
    assert tx["body_command"] == "DATA"
    assert tx["data_reply"].startswith("250 ") and "queued" in tx["data_reply"]
    assert tx["message"]["subject"] == "张帆 pipelined"
    assert any("nobody@example.com" in d for d in findings(s, "recipient-rejected"))


def test_pipelining_bdat_transaction() -> None:
    s = sessions(PIPELINING.name)[0]
    assert len(s["transactions"]) == 3
    tx = s["transactions"][2]
    assert tx["body_command"] == "BDAT"
    assert tx["rcpt_accepted"] == ["bob@example.com"]
    assert tx["data_reply"].startswith("250 ") and "queued" in tx["data_reply"]
    assert tx["message"]["subject"] == "分块 chunked"
    assert addresses(tx["message"]["to"]) == ["bob@example.com"]


def test_send_forged_capture_shows_the_forged_gbk_from_and_the_bcc() -> None:
    # pcaps/send-forged-gbk.pcap was made by `mailsniff send --capture` (pcaps/make_pcaps.py)
    [s] = read_json(PCAPS / "send-forged-gbk.pcap")
    assert s["helo"] == "tylin"
    [auth] = s["auth"]
    assert (auth["mechanism"], auth["username"], auth["success"]) == ("LOGIN", "alice", True)
    [tx] = s["transactions"]
    assert tx["mail_from"] == "alice@example.com"
    assert tx["rcpt_accepted"] == ["bob@example.com", "carol@example.com", "dave@example.com"]
    assert tx["bcc"] == ["dave@example.com"]
    message = tx["message"]
    assert message["from"] == [{"name": "张帆", "address": "ceo@example.com"}]
    assert message["subject"] == "测试 test"
    assert addresses(message["to"]) == ["bob@example.com"]
    assert addresses(message["cc"]) == ["carol@example.com"]
    [mismatch] = findings(s, "from-mismatch")
    assert "ceo@example.com" in mismatch and "MAIL FROM <alice@example.com>" in mismatch
    assert findings(s, "bcc")


def test_starttls_keylog_capture_reads_whole_with_its_key_log() -> None:
    # pcaps/starttls-keylog.pcap + .keys: `mailsniff send --starttls --capture --keylog`
    keys = str(PCAPS / "starttls-keylog.keys")
    [s] = read_json(PCAPS / "starttls-keylog.pcap", "--keylog", keys)
    info = s["tls_info"]
    assert (info["mode"], info["version"], info["decrypted"]) == ("starttls", "TLS 1.3", True)
    assert s["helo"] == "laptop.example.com"
    [auth] = s["auth"]
    assert (auth["mechanism"], auth["username"], auth["password"], auth["success"]) == (
        "PLAIN",
        "alice",
        "wonderland",
        True,
    )
    [tx] = s["transactions"]
    assert tx["mail_from"] == "alice@example.com"
    assert tx["bcc"] == ["dave@example.com"]
    assert tx["message"]["subject"] == "inside TLS"
    assert not findings(s, "cleartext-credentials")  # sent inside TLS
    # Without the key log: up to STARTTLS only, and why.
    [blind] = read_json(PCAPS / "starttls-keylog.pcap")
    assert blind["transactions"] == [] and blind["auth"] == []
    assert blind["tls_info"]["reason"].startswith("no key log given")
