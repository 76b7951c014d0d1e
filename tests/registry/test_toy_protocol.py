"""A protocol registered from outside mailsniff flows through read, --json, the console and
export with no edit to the core: the registry is the only place protocols are listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailsniff.cli import app
from mailsniff.pipeline import Pipeline
from mailsniff.session import registry
from tests.e2e import synth
from tests.jsonschema_check import validate_lines
from tests.registry.echo import ENTRY, PORT

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: echoed\r\n\r\nhello\r\n"
STEPS = [
    ("s", b"ECHO ready\r\n"),
    ("c", b"PING one\r\n"),
    ("s", b"PING one\r\n"),
    ("c", b"MSG\r\n" + MESSAGE + b".\r\n"),
    ("s", b"OK stored\r\n"),
    ("c", b"BYE\r\n"),
    ("s", b"BYE\r\n"),
]


@pytest.fixture
def echo() -> Iterator[None]:
    registry.register(ENTRY)
    try:
        yield
    finally:
        registry.unregister(ENTRY.name)


def capture(tmp_path: Path, port: int = PORT) -> Path:
    segs = synth.tcp_segments(STEPS, synth.Conn(server_port=port))
    return synth.write_pcap(tmp_path / "echo.pcap", synth.frames(segs))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def test_unregistered_the_port_is_not_read(tmp_path: Path) -> None:
    code, out = cli("read", str(capture(tmp_path)), "--json")
    assert code == 0
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["summary"]


def test_registered_protocol_is_parsed_on_its_port(echo: None, tmp_path: Path) -> None:
    path = capture(tmp_path)
    from mailsniff.capture.reader import open_capture

    with open_capture(str(path)) as reader:
        (session,) = Pipeline().run(reader)
    assert session.protocol == "echo"
    assert session.banner == "ECHO ready"
    assert [(e.command, e.argument, e.reply) for e in session.exchanges] == [
        ("PING", "one", "PING one"),
        ("MSG", "", "OK stored"),
        ("BYE", "", "BYE"),
    ]
    (retrieved,) = session.messages
    assert retrieved.message.subject == "echoed"
    assert retrieved.message.size == len(MESSAGE)


def test_registered_protocol_is_found_by_its_greeting_on_another_port(
    echo: None, tmp_path: Path
) -> None:
    code, out = cli("read", str(capture(tmp_path, port=40000)), "--json")
    assert code == 0
    (record,) = [r for r in validate_lines(out) if r["type"] == "session"]
    assert record["protocol"] == "echo"
    assert record["server"]["port"] == 40000


def test_json_console_and_filter(echo: None, tmp_path: Path) -> None:
    path = str(capture(tmp_path))
    code, out = cli("read", path, "--json", "--protocol", "echo")
    assert code == 0
    records = validate_lines(out)
    (session,) = [r for r in records if r["type"] == "session"]
    assert session["protocol"] == "echo"
    assert session["banner"] == "ECHO ready"
    assert session["messages"][0]["message"]["subject"] == "echoed"
    assert records[-1]["sessions"] == 1
    code, out = cli("read", path, "--protocol", "smtp", "--json")
    assert code == 0 and '"type":"session"' not in out

    code, out = cli("read", path)
    assert code == 0
    assert "ECHO" in out  # the session title names the protocol
    assert "PING" in out and "OK stored" in out  # the generic view's command table
    assert "echoed" in out  # the message's subject


def test_export(echo: None, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, _ = cli("read", str(capture(tmp_path)), "--json", "--extract", str(out_dir))
    assert code == 0
    emls = sorted(out_dir.rglob("*.eml"))
    assert len(emls) == 1
    assert emls[0].read_bytes() == MESSAGE
