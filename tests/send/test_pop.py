"""The POP3 client and `mailsniff pop` against a real dovecot on loopback."""

from __future__ import annotations

from pathlib import Path

from mailsniff.send import RejectedError
from mailsniff.send.client import TlsMode
from mailsniff.send.pop import PopAction, PopOptions, pop
from mailsniff.status import ExitStatus
from tests.cli_runner import run_cli
from tests.servers import POP3_MESSAGES, POP3_PASSWORD, Pop3Server


def _options(server: Pop3Server, **kw: object) -> PopOptions:
    return PopOptions(server.user, server.password, timeout=10, **kw)  # type: ignore[arg-type]


def test_stat_counts_messages_and_octets(pop3_server: Pop3Server) -> None:
    result = pop(pop3_server.host, pop3_server.port, _options(pop3_server), PopAction.STAT)
    assert result.error is None
    assert result.stat == (len(POP3_MESSAGES), sum(len(m) for m in POP3_MESSAGES))
    assert result.session is not None
    assert result.session.mailbox_stats == [result.stat]


def test_list_gives_each_message_size(pop3_server: Pop3Server) -> None:
    result = pop(pop3_server.host, pop3_server.port, _options(pop3_server), PopAction.LIST)
    assert result.listing == [(n, len(m)) for n, m in enumerate(POP3_MESSAGES, 1)]


def test_top_returns_the_head_and_the_first_body_lines(pop3_server: Pop3Server) -> None:
    result = pop(
        pop3_server.host, pop3_server.port, _options(pop3_server), PopAction.TOP, number=1, lines=2
    )
    head, _, body = POP3_MESSAGES[0].partition(b"\r\n\r\n")
    first_two = b"".join(body.splitlines(keepends=True)[:2])
    assert result.content == head + b"\r\n\r\n" + first_two
    assert result.session is not None
    [retrieved] = result.session.messages
    assert retrieved.message.subject == "first message"


def test_retr_save_writes_the_message_byte_for_byte(
    pop3_server: Pop3Server, tmp_path: Path
) -> None:
    target = tmp_path / "one.eml"
    result = pop(
        pop3_server.host,
        pop3_server.port,
        _options(pop3_server),
        PopAction.RETR,
        number=1,
        save=target,
    )
    assert result.error is None
    assert target.read_bytes() == POP3_MESSAGES[0]  # the dot-stuffed line is unstuffed


def test_apop_logs_in_without_sending_the_password(pop3_server: Pop3Server) -> None:
    result = pop(
        pop3_server.host,
        pop3_server.port,
        _options(pop3_server, apop=True),
        PopAction.RETR,
        number=2,
    )
    assert result.error is None and result.session is not None
    [attempt] = result.session.auth
    assert (attempt.mechanism, attempt.success) == ("APOP", True)
    assert all(pop3_server.password not in line.text for line in result.session.transcript)
    [retrieved] = result.session.messages
    assert retrieved.message.subject == "测试"
    assert [(a.name, a.address) for a in retrieved.message.from_] == [
        ("张三", "zhangsan@example.com")
    ]


def test_dele_removes_the_message_once_quit_commits_it(pop3_server: Pop3Server) -> None:
    options = _options(pop3_server)
    result = pop(pop3_server.host, pop3_server.port, options, PopAction.DELE, number=1)
    assert result.error is None and result.session is not None
    assert result.session.deleted == [1]
    after = pop(pop3_server.host, pop3_server.port, options, PopAction.STAT)
    assert after.stat == (1, len(POP3_MESSAGES[1]))


def test_a_wrong_password_is_an_authentication_failure(pop3_server: Pop3Server) -> None:
    options = PopOptions(pop3_server.user, "wrong", timeout=15)
    result = pop(pop3_server.host, pop3_server.port, options, PopAction.STAT)
    assert isinstance(result.error, RejectedError)
    assert result.error.message.startswith("authentication failed: -ERR")
    assert result.stat is None


def test_retr_of_a_missing_message_is_the_servers_err(pop3_server: Pop3Server) -> None:
    result = pop(
        pop3_server.host, pop3_server.port, _options(pop3_server), PopAction.RETR, number=9
    )
    assert isinstance(result.error, RejectedError)
    assert result.error.message.startswith("-ERR")


def _cli(server: Pop3Server, *args: str, password: str | None = None) -> list[str]:
    return [
        "pop",
        *args,
        "--server",
        f"{server.host}:{server.port}",
        "--user",
        server.user,
        "--password",
        password or server.password,
        "--timeout",
        "15",
    ]


def test_pop_command_retr_shows_transcript_and_decoded_headers(
    pop3_server: Pop3Server, tmp_path: Path
) -> None:
    target = tmp_path / "two.eml"
    proc = run_cli(*_cli(pop3_server, "retr", "2", "--save", str(target), "--apop"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "C: RETR 2" in proc.stdout
    assert "S: +OK" in proc.stdout
    assert "张三 <zhangsan@example.com>" in proc.stdout
    assert target.read_bytes() == POP3_MESSAGES[1]


def test_pop_command_wrong_password_is_one_line_and_the_rejected_status(
    pop3_server: Pop3Server,
) -> None:
    proc = run_cli(*_cli(pop3_server, "stat", password="wrong"), timeout=60)
    assert proc.returncode == ExitStatus.REJECTED
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("mailsniff: error: authentication failed: -ERR")
    assert "C: PASS wrong" in proc.stdout  # the transcript so far is still shown


def test_pop_command_refused_connection_is_the_network_status() -> None:
    from tests.servers import free_port

    proc = run_cli(
        "pop", "stat", "--server", f"127.0.0.1:{free_port()}", "--user", "u", "--password", "p"
    )
    assert proc.returncode == ExitStatus.NETWORK
    [line] = proc.stderr.strip().splitlines()
    assert "Connection refused" in line


def test_stls_upgrades_before_the_password_is_sent(pop3_server: Pop3Server) -> None:
    options = _options(pop3_server, tls=TlsMode.STARTTLS)
    result = pop(pop3_server.host, pop3_server.port, options, PopAction.RETR, number=1)
    assert result.error is None and result.session is not None
    assert result.session.tls
    texts = [line.text for line in result.session.transcript]
    assert texts.index("STLS") < texts.index("USER bob")
    assert result.content == POP3_MESSAGES[0]


def test_implicit_tls_pop3s(pop3_server: Pop3Server) -> None:
    options = _options(pop3_server, tls=TlsMode.IMPLICIT)
    result = pop(pop3_server.host, pop3_server.tls_port, options, PopAction.STAT)
    assert result.error is None
    assert result.stat == (len(POP3_MESSAGES), sum(len(m) for m in POP3_MESSAGES))


def test_pop_command_redact_masks_the_password(pop3_server: Pop3Server) -> None:
    shown = run_cli(*_cli(pop3_server, "stat"), timeout=60)
    assert shown.returncode == 0 and f"PASS {POP3_PASSWORD}" in shown.stdout
    redacted = run_cli(*_cli(pop3_server, "stat"), "--redact", timeout=60)
    assert redacted.returncode == 0, redacted.stderr
    assert POP3_PASSWORD not in redacted.stdout + redacted.stderr
    assert "PASS ********" in redacted.stdout
