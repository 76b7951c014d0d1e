"""`read --keylog` on POP3: STLS captured by `mailsniff pop --stls --capture --keylog` against
dovecot reads like the cleartext capture of the same dialogue (login, STAT, RETR)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailsniff.protocols.base import Direction
from tests.cli_runner import read_json, run_cli
from tests.servers import Pop3Server, pop3_server
from tests.tls.test_read_keylog_implicit import _decrypted_lines, _lines, _tshark_plain

__all__ = ["pop3_server"]  # the dovecot fixture


def _pop(server: Pop3Server, pcap: Path, *extra: str) -> None:
    proc = run_cli(
        "pop", "retr", "1", "--server", f"{server.host}:{server.port}", "--user", server.user,
        "--password", server.password, "--timeout", "10", "--capture", str(pcap), *extra,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _dialogue(session: dict[str, Any]) -> dict[str, Any]:
    return {
        "auth": [
            (a["mechanism"], a["username"], a["password"], a["success"]) for a in session["auth"]
        ],
        "retrieved": [
            (m["command"], m["partial"], m["message"]["subject"], m["message"]["sha256"])
            for m in session["messages"]
        ],
        "mailbox_stats": session["mailbox_stats"],
    }


def test_stls_capture_with_its_key_log_reads_like_the_cleartext_one(
    pop3_server: Pop3Server, tmp_path: Path
) -> None:
    clear, stls, keys = tmp_path / "clear.pcap", tmp_path / "stls.pcap", tmp_path / "pop.keys"
    _pop(pop3_server, clear)
    _pop(pop3_server, stls, "--stls", "--keylog", str(keys))
    [c] = read_json(clear)
    [t] = read_json(stls, "--keylog", str(keys), "--transcript")
    assert c["messages"], "the cleartext capture retrieved a message"
    assert _dialogue(t) == _dialogue(c)
    info = t["tls_info"]
    assert info["mode"] == "starttls" and info["decrypted"] is True
    assert not any("cleartext-after-stls" in a for a in t["anomalies"])
    [undecrypted] = read_json(stls)
    assert undecrypted["messages"] == [] and undecrypted["tls_info"]["decrypted"] is False
    # What the read path shows as decrypted is what tshark decrypts after STLS.
    port = pop3_server.port
    theirs = _tshark_plain(stls, keys, port, f"tcp.port=={port},pop")
    ours = _decrypted_lines(t)
    assert theirs[Direction.CLIENT] and theirs[Direction.SERVER]
    assert ours[Direction.CLIENT] == _lines(theirs[Direction.CLIENT])
    assert ours[Direction.SERVER][:3] == _lines(theirs[Direction.SERVER])[:3]
