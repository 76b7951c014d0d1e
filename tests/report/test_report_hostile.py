"""A hostile capture: markup, `javascript:` URLs and bidi overrides in what the peers sent.

The report must show every such string literally and run none of it (HTML5 parsing rules,
UAX #9 bidi controls), whatever part of the dialogue carried it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.e2e.synth import Conn, frames, tcp_segments, write_pcap
from tests.report.test_report_browser import assert_clean_load, count, make_report

RLO = "\u202e"
BANNER = f"220 <script>window.__pwned=1</script> {RLO}moc.live ESMTP"
HELO = '<img src=x onerror="window.__pwned=2">'
SENDER = '"javascript:window.__pwned=3"@evil.example'
ODD_RCPT = '"<script>window.__pwned=4</script>"@x.example'
SUBJECT = f"<script>window.__pwned=5</script></style></title> invoice{RLO}fdp.exe"
FILENAME = f"<img src=x onerror=window.__pwned=6>{RLO}txt.exe"
DISPLAY = "<svg onload=window.__pwned=7>"
PASSWORD = "javascript:window.__pwned=8"


def hostile_capture(path: Path) -> Path:
    plain = base64.b64encode(f"\0{HELO}\0{PASSWORD}".encode()).decode()
    attachment = base64.b64encode(b"</script><script>window.__pwned=9</script>").decode()
    message = (
        f'From: "{DISPLAY}" <ceo@example.com>\r\n'
        "To: victim@example.com, <javascript:window.__pwned=10@example.com>\r\n"
        f"Subject: {SUBJECT}\r\n"
        "X-Link: javascript:window.__pwned=11\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n'
        "\r\n"
        "--b\r\n"
        "Content-Type: text/html\r\n"
        "\r\n"
        '<a href="javascript:window.__pwned=12">click</a><script>window.__pwned=13</script>\r\n'
        "--b\r\n"
        f'Content-Type: application/octet-stream; name="{FILENAME}"\r\n'
        f'Content-Disposition: attachment; filename="{FILENAME}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        f"{attachment}\r\n"
        "--b--\r\n"
    ).encode()
    steps = [
        ("s", BANNER.encode() + b"\r\n"),
        ("c", f"EHLO {HELO}\r\n".encode()),
        ("s", b"250-mx\r\n250 AUTH PLAIN\r\n"),
        ("c", f"AUTH PLAIN {plain}\r\n".encode()),
        ("s", b"235 <b>ok</b>\r\n"),
        ("c", f"MAIL FROM:<{SENDER}>\r\n".encode()),
        ("s", b"250 ok\r\n"),
        ("c", b"RCPT TO:<victim@example.com>\r\n"),
        ("s", b"250 ok\r\n"),
        ("c", f"RCPT TO:<{ODD_RCPT}>\r\n".encode()),
        ("s", b"250 ok\r\n"),
        ("c", b"DATA\r\n"),
        ("s", b"354 go\r\n"),
        ("c", message + b".\r\n"),
        ("s", b"550 <script>window.__pwned=14</script> refused\r\n"),
        ("c", b"QUIT\r\n"),
        ("s", b"221 bye\r\n"),
    ]
    return write_pcap(path, frames(tcp_segments(steps, Conn(server_ip="198.51.100.25"))))


def test_hostile_capture_is_shown_literally_and_runs_nothing(
    tmp_path: Path, open_report: Any
) -> None:
    path = make_report(tmp_path, hostile_capture(tmp_path / "hostile.pcap"))
    raw = path.read_text(encoding="utf-8")
    assert RLO not in raw and "\u2028" not in raw  # bidi controls never reach the page as such
    seen = open_report(path)
    page = seen.page
    page.click("#s1-1 details.transcript summary")  # unfold the transcript too
    page.mouse.move(400, 400)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert seen.dialogs == []
    assert_clean_load(seen, path)

    # nothing from the capture became an element, a handler or a link
    assert count(page, "script") == 1  # the report's own
    assert count(page, "img, iframe, object, embed, style:not(head style), svg svg") == 0
    assert count(page, "svg") == 2  # timeline and graph
    handlers = page.evaluate(
        "[...document.querySelectorAll('*')]"
        ".flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on')).length"
    )
    assert handlers == 0

    # ... and every string shows as it was sent, bidi override as a visible escape
    text = page.inner_text("body")
    shown = lambda s: s.replace(RLO, "\\u202e")  # noqa: E731
    for value in (BANNER, HELO, SENDER, ODD_RCPT, SUBJECT, FILENAME, DISPLAY, PASSWORD):
        assert shown(value) in text, value
    assert "550 <script>window.__pwned=14</script> refused" in text
    assert page.inner_text("#s1-1 td.filename") == shown(FILENAME)
    assert page.inner_text("#s1-1 td.subject") == shown(SUBJECT)
    assert page.inner_text("#s1-1 td.banner") == shown(BANNER)
