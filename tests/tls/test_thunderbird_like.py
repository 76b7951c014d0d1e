"""Issue 11's "done when": a capture of Thunderbird-like traffic -- submission on 587 with
STARTTLS and AUTH PLAIN, then POP3S on 995 -- read with its key log gives the same JSON as the
cleartext capture of the same dialogue, except for what TLS itself changes (the `tls` fields,
the ports, the password that crossed the network in clear only in the cleartext capture).

Python's smtplib and poplib (with `keylog_filename`, as Thunderbird writes SSLKEYLOGFILE) against
aiosmtpd and dovecot on loopback, sniffed on `lo` as `send --capture` does; the test servers
listen on free ports, so the server ports are renumbered to 587/995 (and 110 for the cleartext
POP3) in the captures, the bytes untouched.
"""

from __future__ import annotations

import poplib
import re
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap, wrpcap

from mailsniff.send.capture import PacketCapture
from tests.cli_runner import read_json
from tests.servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Pop3Server,
    SmtpServer,
    pop3_server,
    running_smtp,
)

__all__ = ["pop3_server"]  # the dovecot fixture

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Cc: Carol <carol@example.com>\r\n"
    b"Subject: =?UTF-8?Q?Quartalsbericht_f=C3=BCr_Q3?=\r\n"
    b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <tb-like-1@example.com>\r\n"
    b"User-Agent: Mozilla Thunderbird\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"\r\n"
    b"Figures attached.\r\n"
    b"--b1\r\n"
    b'Content-Type: text/csv; name="q3.csv"\r\n'
    b'Content-Disposition: attachment; filename="q3.csv"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"cmVnaW9uLHJldmVudWUKbm9ydGgsMTAwCg==\r\n"
    b"--b1--\r\n"
)
RECIPIENTS = ["bob@example.com", "carol@example.com", "hidden@example.com"]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with running_smtp() as server:
        yield server


def _context(keys: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.keylog_filename = str(keys)
    return context


def _submit(smtp: SmtpServer, keys: Path | None) -> None:
    """Submission as Thunderbird does it: EHLO, STARTTLS, EHLO, AUTH PLAIN, MAIL, RCPT, DATA."""
    with smtplib.SMTP(smtp.host, smtp.port, local_hostname="[127.0.0.1]", timeout=30) as client:
        client.ehlo()
        if keys is not None:
            client.starttls(context=_context(keys))
            client.ehlo()
        client.user, client.password = SMTP_USER, SMTP_PASSWORD
        client.auth("PLAIN", client.auth_plain, initial_response_ok=True)
        client.sendmail("alice@example.com", RECIPIENTS, MESSAGE)


def _fetch(pop: Pop3Server, keys: Path | None) -> None:
    """Mail check: USER/PASS, STAT, UIDL, RETR 1, QUIT (over POP3S when `keys`)."""
    client: poplib.POP3
    if keys is not None:
        client = poplib.POP3_SSL(pop.host, pop.tls_port, context=_context(keys), timeout=30)
    else:
        client = poplib.POP3(pop.host, pop.port, timeout=30)
    client.user(pop.user)
    client.pass_(pop.password)
    client.stat()
    client.uidl()
    client.retr(1)
    client.quit()


def _capture(smtp: SmtpServer, pop: Pop3Server, pcap: Path, keys: Path | None) -> Path:
    capture = PacketCapture(pcap)
    pop_port = pop.tls_port if keys is not None else pop.port
    with capture.watch(smtp.host, smtp.port):
        _submit(smtp, keys)
    with capture.watch(pop.host, pop_port):
        _fetch(pop, keys)
    assert capture.save() > 0
    assert capture.dropped == 0, "the kernel dropped packets: the capture has holes"
    ports = {smtp.port: 587, pop_port: 995 if keys is not None else 110}
    packets = rdpcap(str(pcap))
    for p in packets:
        if TCP in p:
            p[TCP].sport = ports.get(p[TCP].sport, p[TCP].sport)
            p[TCP].dport = ports.get(p[TCP].dport, p[TCP].dport)
            del p[TCP].chksum
    out = pcap.with_name(pcap.stem + "-renumbered.pcap")
    wrpcap(str(out), packets)
    return out


#: Fields of a session record that differ between any two captures of the same dialogue (times,
#: identifiers made from ports and times, TCP sizes, FIN or RST: a TLS socket closed with the
#: peer's close_notify unread ends with a RST), or that say how TLS was used.
_CAPTURE_FIELDS = {
    "id", "uid", "community_id", "start", "end", "duration", "time", "client", "server",
    "client_bytes", "server_bytes", "packets", "close_reason", "tls", "implicit_tls", "tls_info",
}  # fmt: skip


def _normalise(value: Any) -> Any:
    """The record without capture-specific fields, at any depth."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k not in _CAPTURE_FIELDS}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def test_thunderbird_like_capture_with_its_key_log_reads_like_the_cleartext_one(
    smtp: SmtpServer, pop3_server: Pop3Server, tmp_path: Path
) -> None:
    keys = tmp_path / "sslkeylog.txt"
    clear = _capture(smtp, pop3_server, tmp_path / "clear.pcap", None)
    tls = _capture(smtp, pop3_server, tmp_path / "tls.pcap", keys)
    clear_smtp, clear_pop = read_json(clear)
    tls_smtp, tls_pop = read_json(tls, "--keylog", str(keys))

    # Every session says how its TLS was handled.
    assert clear_smtp["tls_info"] is None and clear_pop["tls_info"] is None
    assert (tls_smtp["server"]["port"], tls_smtp["tls_info"]["mode"]) == (587, "starttls")
    assert (tls_pop["server"]["port"], tls_pop["tls_info"]["mode"]) == (995, "implicit")
    for s in (tls_smtp, tls_pop):
        assert s["tls_info"]["decrypted"] is True, s["tls_info"]
        assert s["tls_info"]["version"] == "TLS 1.3"

    # What TLS changes, and nothing else: the password crossed the network in clear only in the
    # cleartext capture; the EHLO answer inside TLS no longer offers STARTTLS; dovecot's APOP
    # challenge in its greeting is new on every connection.
    for c, t in ((clear_smtp, tls_smtp), (clear_pop, tls_pop)):
        assert "cleartext-credentials" in {f["kind"] for f in c["findings"]}
        assert "cleartext-credentials" not in {f["kind"] for f in t["findings"]}
        c["findings"] = [f for f in c["findings"] if f["kind"] != "cleartext-credentials"]
    assert clear_smtp["capabilities"] == [*tls_smtp["capabilities"], "STARTTLS"] or sorted(
        clear_smtp["capabilities"]
    ) == sorted([*tls_smtp["capabilities"], "STARTTLS"])
    clear_smtp["capabilities"] = tls_smtp["capabilities"]
    challenge = re.compile(r"<[^<>]*>")
    for s in (clear_pop, tls_pop):
        s["banner"] = challenge.sub("<challenge>", s["banner"])

    assert clear_smtp["auth"] and clear_smtp["transactions"] and clear_pop["messages"]
    assert _normalise(tls_smtp) == _normalise(clear_smtp)
    assert _normalise(tls_pop) == _normalise(clear_pop)
    [txn] = tls_smtp["transactions"]
    assert txn["bcc"] == ["hidden@example.com"]
    assert [a["mechanism"] for a in tls_smtp["auth"]] == ["PLAIN"]
