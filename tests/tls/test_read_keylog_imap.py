"""`read --keylog` on IMAP: a STARTTLS session and an IMAPS (993) session of Python's imaplib
against dovecot, sniffed on `lo` as `send --capture` does, read like the cleartext session of the
same dialogue; what the read path shows as decrypted agrees with tshark's `follow,tls`."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailsniff.protocols.base import Direction
from mailsniff.send.capture import PacketCapture
from tests.cli_runner import read_json
from tests.servers import IMAP_MESSAGES, ImapServer, running_dovecot_imap
from tests.tls.test_read_keylog_implicit import _decrypted_lines, _lines, _renumber, _tshark_plain

C, S = Direction.CLIENT, Direction.SERVER


@pytest.fixture(scope="module")
def imaps() -> Iterator[ImapServer]:
    with running_dovecot_imap(tls=True) as server:
        yield server


def _context(keys: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.keylog_filename = str(keys)
    return context


def _imaplib(server: ImapServer, pcap: Path, mode: str, keys: Path | None = None) -> None:
    """One imaplib session: (STARTTLS,) LOGIN, SELECT INBOX, FETCH 1 BODY.PEEK[], LOGOUT."""
    port = server.tls_port if mode == "implicit" else server.port
    capture = PacketCapture(pcap)
    with capture.watch("127.0.0.1", port):
        imap: imaplib.IMAP4
        if mode == "implicit":
            assert keys is not None
            imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=_context(keys), timeout=30)
        else:
            imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
            if mode == "starttls":
                assert keys is not None
                imap.starttls(ssl_context=_context(keys))
        imap.login(server.user, server.password)
        imap.select("INBOX")
        typ, data = imap.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(data[0], tuple)
        assert bytes(data[0][1]) == IMAP_MESSAGES[0]
        imap.logout()
    assert capture.save() > 0


def _dialogue(session: dict[str, Any]) -> dict[str, Any]:
    """What the session says was done: logins, messages moved, mailboxes, findings."""
    return {
        "protocol": session["protocol"],
        "banner": session["banner"],
        "auth": [
            (a["mechanism"], a["username"], a["password"], a["success"]) for a in session["auth"]
        ],
        "messages": [
            (m["command"], m["partial"], m["message"]["subject"], m["message"]["sha256"])
            for m in session["messages"]
        ],
        # Times differ, and \\Recent goes to the first session that sees a message.
        "imap": {
            **session["imap"],
            "mailboxes": [
                {k: v for k, v in m.items() if k not in ("time", "recent")}
                for m in session["imap"]["mailboxes"]
            ],
        },
        "findings": sorted(
            f["kind"] for f in session["findings"] if f["kind"] != "cleartext-credentials"
        ),
    }


def test_imap_starttls_with_its_key_log_reads_like_the_cleartext_session(
    imaps: ImapServer, tmp_path: Path
) -> None:
    clear, tls, keys = tmp_path / "clear.pcap", tmp_path / "tls.pcap", tmp_path / "imap.keys"
    _imaplib(imaps, clear, "clear")
    _imaplib(imaps, tls, "starttls", keys)
    [c] = read_json(clear)
    [t] = read_json(tls, "--keylog", str(keys), "--transcript")
    assert c["messages"] and c["auth"], "the cleartext session logged in and fetched"
    assert _dialogue(t) == _dialogue(c)
    info = t["tls_info"]
    assert info["mode"] == "starttls" and info["decrypted"] is True, info
    assert info["version"] == "TLS 1.3" and info["records_decrypted"] > 0
    # The password crossed the network in clear only in the cleartext session.
    assert "cleartext-credentials" in {f["kind"] for f in c["findings"]}
    assert "cleartext-credentials" not in {f["kind"] for f in t["findings"]}
    # Without the key log: the TLS is described, nothing after STARTTLS is made up.
    [blind] = read_json(tls)
    assert blind["tls_info"]["decrypted"] is False and blind["auth"] == []
    assert blind["messages"] == []
    # What the read path shows as decrypted is what tshark decrypts.
    theirs = _tshark_plain(tls, keys, imaps.port, f"tcp.port=={imaps.port},imap")
    ours = _decrypted_lines(t)
    assert ours[C] == _lines(theirs[C])
    assert ours[S][:4] == _lines(theirs[S])[:4]


def test_imaps_reads_from_the_first_byte_and_agrees_with_tshark(
    imaps: ImapServer, tmp_path: Path
) -> None:
    clear, raw, keys = tmp_path / "clear.pcap", tmp_path / "imaps.pcap", tmp_path / "imaps.keys"
    _imaplib(imaps, clear, "clear")
    _imaplib(imaps, raw, "implicit", keys)
    pcap = _renumber(raw, imaps.tls_port, 993)
    [c] = read_json(clear)
    [s] = read_json(pcap, "--keylog", str(keys), "--transcript")
    info = s["tls_info"]
    assert info["mode"] == "implicit" and info["decrypted"] is True, info
    assert s["server"]["port"] == 993 and s["protocol"] == "imap"
    # The greeting inside TLS offers no STARTTLS; the rest of the dialogue is the same.
    assert s["banner"] == c["banner"].replace(" STARTTLS", "")
    c["banner"] = s["banner"]
    assert _dialogue(s) == _dialogue(c)
    assert "cleartext-credentials" not in {f["kind"] for f in s["findings"]}
    theirs = _tshark_plain(pcap, keys, 993)
    ours = _decrypted_lines(s)
    assert ours[C] == _lines(theirs[C])
    assert ours[S][:4] == _lines(theirs[S])[:4]
    [blind] = read_json(pcap)
    assert blind["tls_info"]["decrypted"] is False and blind["messages"] == []
