"""Server texts (greeting, replies, EHLO lines) in GBK, as Chinese mail servers send them."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import read_json, run_cli
from tests.e2e import synth

BANNER = "220 163.com Coremail SMTP(Anti Spam) System 欢迎使用网易邮箱"
EHLO_LINE = "250-中文服务器 mail"
REJECT = "550 用户不存在"
STEPS: list[synth.Step] = [
    ("s", BANNER.encode("gbk") + b"\r\n"),
    ("c", b"EHLO client\r\n"),
    ("s", EHLO_LINE.encode("gbk") + b"\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
    ("c", b"MAIL FROM:<a@example.org>\r\n"),
    ("s", b"250 Mail OK\r\n"),
    ("c", b"RCPT TO:<nobody@163.com>\r\n"),
    ("s", REJECT.encode("gbk") + b"\r\n"),
    ("c", b"QUIT\r\n"),
    ("s", b"221 Bye\r\n"),
]


def _capture(tmp_path: Path) -> Path:
    segs = synth.tcp_segments(STEPS, synth.Conn())
    return synth.write_pcap(tmp_path / "gbk.pcap", synth.frames(segs, "ether"))


def test_gbk_greeting_replies_and_ehlo_lines_decode_alike_in_json(tmp_path: Path) -> None:
    (session,) = read_json(_capture(tmp_path))
    assert session["banner"] == BANNER
    assert session["capabilities"] == ["PIPELINING", "8BITMIME"]
    (tx,) = session["transactions"]
    assert [(r["reply"], r["status"]) for r in tx["rcpts"]] == [(REJECT, "rejected")]
    expected = {
        "kind": "recipient-rejected",
        "detail": f"RCPT TO:<nobody@163.com>: {REJECT}",
        "severity": "low",
        "transaction": 1,
    }
    assert any(f.items() >= expected.items() for f in session["findings"])


def test_gbk_greeting_on_the_console_and_in_the_transcript(tmp_path: Path) -> None:
    path = _capture(tmp_path)
    proc = run_cli("read", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "欢迎使用网易邮箱" in proc.stdout
    proc = run_cli("read", str(path), "--transcript")
    assert proc.returncode == 0, proc.stderr
    for text in (BANNER, EHLO_LINE, REJECT):
        assert text in proc.stdout
