"""The IMAP parser on real traffic: Python's imaplib, fetchmail and a hand-driven COMPRESS session
against dovecot on loopback, each direction's bytes recorded by a relay in between."""

from __future__ import annotations

import base64
import imaplib
import os
import socket
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any

from mailsniff.protocols.base import Direction
from mailsniff.protocols.imap import (
    Anomaly,
    AuthResult,
    Capabilities,
    Command,
    Completion,
    CompressionStarted,
    Continuation,
    Expunged,
    Fetch,
    IdleDone,
    ImapParser,
    MailboxSelected,
    MessageData,
    MessageEnd,
    MessageStart,
    Store,
)
from tests.helpers import C, S, Step, feed_all_ways
from tests.servers import IMAP_MESSAGES, ImapServer, imap_server  # noqa: F401


class Relay:
    """127.0.0.1 TCP relay to one upstream port that records each direction's bytes in order.

    Bytes are recorded before they are forwarded, so the record keeps the causal order the
    parser needs (a server answer is never recorded before the command it answers).
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.steps: list[tuple[Direction, bytes]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        client, _ = self._listener.accept()
        server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
        for src, dst, direction in ((client, server, C), (server, client, S)):
            t = threading.Thread(target=self._pump, args=(src, dst, direction), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    self.steps.append((direction, data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (dst, src):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait(self) -> list[Step]:
        """The recorded steps, once both directions have ended."""
        self._accept.join(timeout=10)
        for t in self._threads:
            t.join(timeout=10)
        self._listener.close()
        with self._lock:
            return list(self.steps)


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def content(events: list[Any], start: MessageStart) -> bytes:
    return b"".join(e.data for e in of(events, MessageData) if e.message_id == start.message_id)


def _fetched(data: list[Any]) -> bytes:
    """The literal imaplib returned for a single-item FETCH."""
    for item in data:
        if isinstance(item, tuple):
            return bytes(item[1])
    raise AssertionError(f"no literal in {data!r}")


BCC_MESSAGE = (
    b"From: Carol <carol@example.com>\r\n"
    b"To: Dan <dan@example.com>\r\n"
    b"Bcc: secret-boss@example.com\r\n"
    b"Subject: sent with a blind copy\r\n"
    b"\r\n"
    b"See you tomorrow.\r\n"
)


def test_imaplib_session_against_dovecot(imap_server: ImapServer) -> None:  # noqa: F811
    relay = Relay(imap_server.port)
    imap = imaplib.IMAP4("127.0.0.1", relay.port)
    imap.login(imap_server.user, imap_server.password)
    imap.select("INBOX")
    whole = _fetched(imap.fetch("1", "(BODY.PEEK[])")[1])
    _, uids = imap.uid("SEARCH", "ALL")
    second_uid = uids[0].split()[1].decode()
    partial = _fetched(imap.uid("FETCH", second_uid, "(BODY.PEEK[]<0.40>)")[1])
    header = _fetched(imap.fetch("2", "(BODY.PEEK[HEADER])")[1])
    date = imaplib.Time2Internaldate(time.mktime((2026, 12, 2, 10, 0, 0, 0, 0, -1)))
    assert imap.append("Sent", "(\\Seen)", date, BCC_MESSAGE)[0] == "OK"
    imap.store("1", "+FLAGS", "(\\Deleted)")
    imap.expunge()
    imap.logout()
    steps = relay.wait()

    events = feed_all_ways(ImapParser, steps, mergeable=(MessageData,), examples=10)
    assert [a.kind for a in of(events, Anomaly)] == []
    auth = of(events, AuthResult)[0]
    assert (auth.method, auth.user, auth.secret, auth.success) == (
        "LOGIN",
        imap_server.user,
        imap_server.password,
        True,
    )
    selected = of(events, MailboxSelected)[0]
    assert (selected.mailbox, selected.ok, selected.exists) == ("INBOX", True, len(IMAP_MESSAGES))
    assert selected.uidvalidity is not None and selected.uidnext is not None
    assert "\\Deleted" in selected.flags

    fetch_whole, fetch_partial, fetch_header = of(events, MessageStart)[:3]
    assert (fetch_whole.seq, fetch_whole.whole, fetch_whole.mailbox) == (1, True, "INBOX")
    assert content(events, fetch_whole) == whole == IMAP_MESSAGES[0]
    assert (fetch_partial.partial, fetch_partial.whole, fetch_partial.origin) == (True, False, 0)
    assert fetch_partial.requested_length == 40 and fetch_partial.uid == int(second_uid)
    assert content(events, fetch_partial) == partial == IMAP_MESSAGES[1][:40]
    assert (fetch_header.section, fetch_header.whole) == ("HEADER", False)
    assert (
        content(events, fetch_header)
        == header
        == IMAP_MESSAGES[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    )

    append = of(events, MessageStart)[3]
    assert (append.source, append.mailbox, append.flags, append.date) == (
        "APPEND",
        "Sent",
        ("\\Seen",),
        date.strip('"'),
    )
    assert content(events, append) == BCC_MESSAGE and b"Bcc: secret-boss" in content(events, append)
    assert [c.purpose for c in of(events, Continuation)] == ["literal"]
    appended = [c for c in of(events, Completion) if c.command and c.command.name == "APPEND"]
    assert appended[0].ok and appended[0].code == "APPENDUID"
    assert all(e.complete for e in of(events, MessageEnd))

    store = of(events, Store)[0]
    assert (store.operation, store.flags, store.mailbox) == ("+", ("\\Deleted",), "INBOX")
    assert [f.flags for f in of(events, Fetch) if f.flags is not None][-1] is not None
    assert [(e.seq, e.mailbox) for e in of(events, Expunged)] == [(1, "INBOX")]


def test_imaplib_authenticate_plain(imap_server: ImapServer) -> None:  # noqa: F811
    relay = Relay(imap_server.port)
    imap = imaplib.IMAP4("127.0.0.1", relay.port)
    secret = f"\0{imap_server.user}\0{imap_server.password}".encode()
    imap.authenticate("PLAIN", lambda _: secret)
    imap.logout()
    events = feed_all_ways(ImapParser, relay.wait(), mergeable=(MessageData,), examples=10)
    auth = of(events, AuthResult)
    assert [(a.mechanism, a.user, a.secret, a.success) for a in auth] == [
        ("PLAIN", imap_server.user, imap_server.password, True)
    ]
    assert [c.purpose for c in of(events, Continuation)] == ["sasl"]
    assert of(events, Capabilities)[0].has("AUTH=PLAIN")


class _Raw:
    """A hand-driven IMAP client that can switch its socket to DEFLATE (RFC 4978)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.deflate: Any = None
        self.inflate: Any = None
        self.buffer = b""

    def send(self, line: bytes) -> None:
        if self.deflate is not None:
            line = self.deflate.compress(line) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(line)

    def read_until(self, needle: bytes) -> bytes:
        while needle not in self.buffer:
            data = self.sock.recv(65536)
            assert data, f"connection closed waiting for {needle!r}: {self.buffer!r}"
            self.buffer += self.inflate.decompress(data) if self.inflate is not None else data
        head, _, self.buffer = self.buffer.partition(needle)
        return head + needle


def test_compress_deflate_both_directions(imap_server: ImapServer) -> None:  # noqa: F811
    assert imap_server.compress, "dovecot's imap_zlib plugin is missing (dovecot-imapd)"
    relay = Relay(imap_server.port)
    raw = _Raw(relay.port)
    raw.read_until(b"\r\n")
    login = base64.b64encode(f"\0{imap_server.user}\0{imap_server.password}".encode())
    raw.send(b"a AUTHENTICATE PLAIN " + login + b"\r\n")
    raw.read_until(b"a OK")
    assert b"COMPRESS=DEFLATE" in raw.read_until(b"\r\n")
    raw.send(b"b COMPRESS DEFLATE\r\n")
    raw.read_until(b"b OK")
    raw.read_until(b"\r\n")
    raw.deflate = zlib.compressobj(wbits=-15)
    raw.inflate = zlib.decompressobj(wbits=-15)
    assert not raw.buffer
    raw.send(b"c SELECT INBOX\r\n")
    raw.read_until(b"c OK")
    raw.send(b"d FETCH 2 BODY.PEEK[]\r\n")
    raw.read_until(b"d OK")
    raw.send(b"e IDLE\r\n")
    raw.read_until(b"+ idling\r\n")
    raw.send(b"DONE\r\n")
    raw.read_until(b"e OK")
    raw.send(b"f LOGOUT\r\n")
    raw.read_until(b"f OK")
    raw.sock.close()
    steps = relay.wait()

    events = feed_all_ways(ImapParser, steps, mergeable=(MessageData,), examples=10)
    assert [a.kind for a in of(events, Anomaly)] == []
    assert of(events, CompressionStarted)[0].mechanism == "DEFLATE"
    assert of(events, AuthResult)[0].user == imap_server.user
    names = [c.name for c in of(events, Command)]
    assert names == ["AUTHENTICATE", "COMPRESS", "SELECT", "FETCH", "IDLE", "LOGOUT"]
    assert of(events, MailboxSelected)[0].exists == len(IMAP_MESSAGES)
    start = of(events, MessageStart)[0]
    assert content(events, start) == IMAP_MESSAGES[1] and start.whole
    assert of(events, IdleDone)[0].tag == "e"
    assert [c.purpose for c in of(events, Continuation)] == ["idle"]


def test_fetchmail_downloads_and_deletes(imap_server: ImapServer, tmp_path: Path) -> None:  # noqa: F811
    """fetchmail (a real Debian mail retriever): LOGIN, SELECT, header and text fetched apart,
    STORE \\Seen \\Deleted and EXPUNGE after each message."""
    relay = Relay(imap_server.port)
    rc, delivered = tmp_path / "fetchmailrc", tmp_path / "delivered"
    rc.write_text(
        "set no bouncemail\nset invisible\n"
        f"poll 127.0.0.1 service {relay.port} protocol IMAP auth password no envelope\n"
        f' user "{imap_server.user}" password "{imap_server.password}" is root here\n'
        f' sslproto "" mda "/bin/sh -c \'cat >> {delivered}\'"\n'
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["fetchmail", "-f", str(rc), "--nosyslog", "-i", str(tmp_path / "ids")],
        capture_output=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    events = feed_all_ways(ImapParser, relay.wait(), mergeable=(MessageData,), examples=10)
    assert [a.kind for a in of(events, Anomaly)] == []
    assert of(events, AuthResult)[0].user == imap_server.user
    starts = of(events, MessageStart)
    assert [(s.seq, s.section, s.whole) for s in starts] == [
        (1, "HEADER", False),
        (1, "TEXT", False),
        (1, "HEADER", False),
        (1, "TEXT", False),
    ]
    pieces = [content(events, s) for s in starts]
    assert [pieces[0] + pieces[1], pieces[2] + pieces[3]] == list(IMAP_MESSAGES)
    # what fetchmail delivered is what the parser saw (fetchmail hands the MDA LF line ends)
    assert delivered.read_bytes() == b"".join(IMAP_MESSAGES).replace(b"\r\n", b"\n")
    stores = of(events, Store)
    assert [(s.operation, s.flags) for s in stores] == [("+", ("\\Seen", "\\Deleted"))] * 2
    assert [(e.seq, e.mailbox) for e in of(events, Expunged)] == [(1, "INBOX"), (1, "INBOX")]
