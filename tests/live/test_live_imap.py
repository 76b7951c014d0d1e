"""`live -i lo` sniffs a real dovecot IMAP session driven by Python's imaplib."""

from __future__ import annotations

import imaplib
import signal
from pathlib import Path

from tests.cli_runner import read_json
from tests.live.test_live import _DEADLINE, _is_session, _records, live
from tests.servers import IMAP_MESSAGES, ImapServer, imap_server  # noqa: F401

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
