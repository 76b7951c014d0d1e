"""`live -i lo` sniffs a real dovecot IMAP session driven by Python's imaplib."""

from __future__ import annotations

import imaplib
import signal
import smtplib
from pathlib import Path

from tests.cli_runner import read_json
from tests.live.test_live import _DEADLINE, _is_session, _records, live
from tests.servers import IMAP_MESSAGES, ImapServer, imap_server, running_smtp  # noqa: F401

APPENDED = (
    b"From: Carol <carol@example.com>\r\nTo: bob@example.com\r\nBcc: dave@example.com\r\n"
    b"Subject: filed live\r\nMessage-ID: <live-append@example.com>\r\n\r\nmy copy\r\n"
)


def test_imap_session_live_shows_login_fetch_append_and_pcap_agrees(
    imap_server: ImapServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    pcap = tmp_path / "imap.pcap"
    # only the server's own port: other tests' loopback traffic stays out
    with live("--json", "-w", str(pcap), "--ports", str(imap_server.port)) as lp:
        client = imaplib.IMAP4(imap_server.host, imap_server.port, timeout=_DEADLINE)
        client.login(imap_server.user, imap_server.password)
        client.select("INBOX")
        client.fetch("1", "(BODY.PEEK[])")
        client.append("Sent", "(\\Seen)", None, APPENDED)
        client.logout()
        lp.next_stdout(_is_session)
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    sessions = [r for r in _records(lines) if r["type"] == "session"]
    assert len(sessions) == 1
    s = sessions[0]
    assert s["protocol"] == "imap" and s["server"]["port"] == imap_server.port
    assert s["banner"].startswith("* OK") and s["complete"]
    assert [(a["mechanism"], a["username"], a["password"], a["success"]) for a in s["auth"]] == [
        ("LOGIN", imap_server.user, imap_server.password, True)
    ]
    assert [m["name"] for m in s["imap"]["mailboxes"]] == ["INBOX"]
    fetched, appended = s["messages"]
    assert (fetched["imap"]["source"], fetched["partial"]) == ("FETCH", False)
    assert fetched["message"]["size"] == len(IMAP_MESSAGES[0])
    assert fetched["message"]["subject"] == "first IMAP message"
    assert (appended["imap"]["source"], appended["imap"]["mailbox"]) == ("APPEND", "Sent")
    assert appended["imap"]["outcome"] == "OK"
    assert [b["address"] for b in appended["message"]["bcc"]] == ["dave@example.com"]
    assert read_json(pcap) == sessions


def test_sent_copy_live_links_the_smtp_message_and_its_append(
    imap_server: ImapServer,  # noqa: F811
) -> None:
    message = (
        "From: carol@example.com\r\nTo: bob@example.com\r\nBcc: dave@example.com\r\n"
        "Subject: live copy\r\nMessage-ID: <live-sent-copy@example.com>\r\n\r\nhello\r\n"
    )
    with running_smtp(tls=False) as smtp:
        ports = f"{smtp.port},{imap_server.port}"
        with live("--json", "--ports", ports) as lp:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=_DEADLINE) as client:
                client.ehlo("client.example.com")
                sent = message.replace("Bcc: dave@example.com\r\n", "")
                client.sendmail("carol@example.com", ["bob@example.com", "dave@example.com"], sent)
            lp.next_stdout(_is_session)
            client2 = imaplib.IMAP4(imap_server.host, imap_server.port, timeout=_DEADLINE)
            client2.login(imap_server.user, imap_server.password)
            client2.append("Sent", "(\\Seen)", None, message.encode())
            client2.logout()
            lp.next_stdout(lambda line: '"type":"sent_copy"' in line)
            status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    records = _records(lines)
    smtp_record, imap_record, link = records[:3]
    assert (smtp_record["protocol"], imap_record["protocol"]) == ("smtp", "imap")
    assert link["smtp"]["session"] == smtp_record["id"]
    assert imap_record["messages"][0]["sent_copy"][0]["session"] == smtp_record["id"]
    dave = [r for r in link["recipients"] if r["address"] == "dave@example.com"]
    assert dave[0]["text"] == (
        "Bcc dave@example.com: in RCPT TO, not in the sent headers, "
        "kept as a Bcc header in the Sent copy"
    )
    assert records[-1]["sent_copies"] == 1
