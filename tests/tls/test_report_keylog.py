"""`mailsniff report --keylog`: the HTML report shows the dialogue inside TLS, says how each
session's TLS was handled, and marks the decrypted transcript lines (pcaps/starttls-keylog.pcap,
made by `send --starttls --capture --keylog`)."""

from __future__ import annotations

from pathlib import Path

from tests.cli_runner import PCAPS, run_cli

PCAP = PCAPS / "starttls-keylog.pcap"
KEYS = PCAPS / "starttls-keylog.keys"


def _report(tmp_path: Path, *extra: str) -> str:
    out = tmp_path / "r.html"
    proc = run_cli("report", str(PCAP), "-o", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return out.read_text(encoding="utf-8")


def test_report_with_the_key_log_shows_the_dialogue_inside_tls(tmp_path: Path) -> None:
    page = _report(tmp_path, "--keylog", str(KEYS))
    assert "TLS 1.3" in page and "decrypted with the key log" in page
    assert "inside TLS" in page  # the subject of the message sent after STARTTLS
    assert "C* MAIL FROM:&lt;alice@example.com&gt;" in page
    blind = _report(tmp_path)
    assert "not decrypted: no key log given" in blind
    assert "inside TLS" not in blind and "C* " not in blind
