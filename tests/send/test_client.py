"""The recording SMTP client against a real aiosmtpd on loopback (and packets it captured)."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailsniff.capture.reader import open_capture
from mailsniff.limits import MAX_LINE
from mailsniff.model import Session
from mailsniff.pipeline import Pipeline
from mailsniff.protocols.base import Direction
from mailsniff.send import NetworkError, RejectedError
from mailsniff.send.capture import PacketCapture
from mailsniff.send.client import SendResult, SmtpOptions, TlsMode, deliver
from mailsniff.send.message import MessageSpec, build_message, envelope_recipients
from tests.servers import (
    REJECTED_RCPT,
    SEED_553,
    SMTP_PASSWORD,
    SMTP_USER,
    UNAUTHORIZED_SENDER,
    SmtpServer,
    free_port,
    running_smtp,
)

SPEC = MessageSpec(
    envelope_from="boss@example.com",
    to=["to@example.com"],
    cc=["cc@example.com"],
    bcc=["hidden@example.com"],
    subject="quarterly numbers",
    body="see attached\n.leading dot line\n",
)


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpServer]:
    with running_smtp() as smtp:
        yield smtp


@pytest.fixture(scope="module")
def plain_server() -> Iterator[SmtpServer]:
    """No PIPELINING offered, no TLS."""
    with running_smtp(tls=False, pipelining=False) as smtp:
        yield smtp


def _send(
    server: SmtpServer,
    spec: MessageSpec = SPEC,
    port: int | None = None,
    **options: object,
) -> SendResult:
    opts = SmtpOptions(timeout=10, **options)  # type: ignore[arg-type]
    return deliver(
        server.host,
        port or server.port,
        spec.envelope_from,
        envelope_recipients(spec),
        build_message(spec),
        opts,
    )


def _statuses(result: SendResult) -> dict[str, str]:
    return {o.address: o.status for o in result.outcomes}


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN", "CRAM-MD5"])
def test_each_auth_mechanism_logs_in_and_the_message_arrives(
    server: SmtpServer, mechanism: str
) -> None:
    before = len(server.received)
    result = _send(server, auth=mechanism, user=SMTP_USER, password=SMTP_PASSWORD)
    assert result.error is None
    assert result.session is not None
    [attempt] = result.session.auth
    assert (attempt.mechanism, attempt.success) == (mechanism, True)
    assert attempt.username == SMTP_USER
    assert len(server.received) == before + 1
    got = server.received[-1]
    assert got.rcpt_tos == ["to@example.com", "cc@example.com", "hidden@example.com"]
    assert b"hidden@example.com" not in got.content
    assert b"\r\n.leading dot line\r\n" in got.content  # dot-stuffing undone by the server


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN", "CRAM-MD5"])
def test_a_wrong_password_is_an_auth_failure_and_nothing_is_sent(
    server: SmtpServer, mechanism: str
) -> None:
    before = len(server.received)
    result = _send(server, auth=mechanism, user=SMTP_USER, password="wrong")
    assert isinstance(result.error, RejectedError)
    assert result.error.message.startswith("authentication failed: 535")
    assert len(server.received) == before
    assert set(_statuses(result).values()) == {"not tried"}
    assert result.session is not None and result.session.auth[0].success is False


def test_a_rejected_recipient_gets_its_550_and_the_others_get_the_message(
    server: SmtpServer,
) -> None:
    spec = MessageSpec("boss@example.com", to=["to@example.com", REJECTED_RCPT])
    result = _send(server, spec)
    assert result.error is None
    assert _statuses(result) == {"to@example.com": "accepted", REJECTED_RCPT: "rejected"}
    rejected = next(o for o in result.outcomes if o.address == REJECTED_RCPT)
    assert rejected.reply == "550 5.1.1 No such user here"
    assert server.received[-1].rcpt_tos == ["to@example.com"]


@pytest.mark.parametrize("fixture", ["server", "plain_server"])
def test_the_seed_553_rejects_the_sender_and_every_recipient(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    smtp: SmtpServer = request.getfixturevalue(fixture)
    before = len(smtp.received)
    spec = MessageSpec(UNAUTHORIZED_SENDER, to=["to@example.com"])
    result = _send(smtp, spec)
    assert isinstance(result.error, RejectedError)
    assert SEED_553 in result.error.message
    assert _statuses(result) == {"to@example.com": "rejected"}
    assert len(smtp.received) == before


def test_authenticating_lets_the_553_sender_through(server: SmtpServer) -> None:
    spec = MessageSpec(UNAUTHORIZED_SENDER, to=["to@example.com"])
    result = _send(server, spec, auth="LOGIN", user=SMTP_USER, password=SMTP_PASSWORD)
    assert result.error is None
    assert server.received[-1].mail_from == UNAUTHORIZED_SENDER


def _client_ts(session: Session, prefix: str) -> list[int]:
    return [
        line.ts_ns
        for line in session.transcript
        if line.direction is Direction.CLIENT and line.text.startswith(prefix)
    ]


def test_pipelining_sends_mail_rcpt_and_data_in_one_write(server: SmtpServer) -> None:
    result = _send(server)
    assert result.error is None and result.session is not None
    stamps = {*_client_ts(result.session, "MAIL"), *_client_ts(result.session, "RCPT")}
    stamps |= set(_client_ts(result.session, "DATA"))
    assert len(stamps) == 1


def test_without_pipelining_each_command_waits_for_its_reply(plain_server: SmtpServer) -> None:
    result = _send(plain_server)
    assert result.error is None and result.session is not None
    assert "PIPELINING" not in result.session.capabilities
    stamps = _client_ts(result.session, "MAIL") + _client_ts(result.session, "RCPT")
    assert len(set(stamps)) == 4
    assert plain_server.received[-1].rcpt_tos == [
        "to@example.com",
        "cc@example.com",
        "hidden@example.com",
    ]


def test_pipelining_can_be_turned_off(server: SmtpServer) -> None:
    result = _send(server, pipelining=False)
    assert result.error is None and result.session is not None
    assert len(set(_client_ts(result.session, "RCPT"))) == 3


def test_starttls_encrypts_before_auth_and_the_dialogue_is_still_shown(
    server: SmtpServer,
) -> None:
    result = _send(
        server, tls=TlsMode.STARTTLS, auth="PLAIN", user=SMTP_USER, password=SMTP_PASSWORD
    )
    assert result.error is None and result.session is not None
    assert result.session.tls
    texts = [line.text for line in result.session.transcript]
    assert texts.index("STARTTLS") < next(i for i, t in enumerate(texts) if t.startswith("AUTH"))
    assert result.session.auth[0].success is True


def test_implicit_tls_speaks_tls_from_the_first_byte(server: SmtpServer) -> None:
    result = _send(server, port=server.tls_port, tls=TlsMode.IMPLICIT)
    assert result.error is None and result.session is not None
    assert result.session.tls
    assert result.session.banner is not None and result.session.banner.startswith("220")


def test_starttls_to_a_server_without_it_is_refused(plain_server: SmtpServer) -> None:
    result = _send(plain_server, tls=TlsMode.STARTTLS)
    assert isinstance(result.error, RejectedError)
    assert result.error.message == "the server does not offer STARTTLS"


def test_tls_to_a_cleartext_port_is_a_tls_failure(server: SmtpServer) -> None:
    result = _send(server, tls=TlsMode.IMPLICIT)
    assert isinstance(result.error, NetworkError)
    assert "TLS" in result.error.message


def test_verifying_a_self_signed_certificate_fails(server: SmtpServer) -> None:
    result = _send(server, port=server.tls_port, tls=TlsMode.IMPLICIT, tls_verify=True)
    assert isinstance(result.error, NetworkError)
    assert "TLS handshake failed" in result.error.message


def test_connection_refused_is_a_network_error_without_a_session(server: SmtpServer) -> None:
    result = _send(server, port=free_port())
    assert isinstance(result.error, NetworkError)
    assert "Connection refused" in result.error.message
    assert result.session is None


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield int(s.getsockname()[1])


def test_a_server_that_never_greets_times_out(server: SmtpServer, mute_port: int) -> None:
    spec = SPEC
    result = deliver(
        "127.0.0.1",
        mute_port,
        spec.envelope_from,
        envelope_recipients(spec),
        build_message(spec),
        SmtpOptions(timeout=0.5),
    )
    assert isinstance(result.error, NetworkError)
    assert result.error.message == "timeout: no reply from the server within 0.5s"
    assert set(_statuses(result).values()) == {"not tried"}


def test_the_shown_transcript_is_what_read_finds_in_the_capture(
    server: SmtpServer, tmp_path: Path
) -> None:
    capture = PacketCapture(tmp_path / "sent.pcap")
    spec = SPEC
    result = deliver(
        server.host,
        server.port,
        spec.envelope_from,
        envelope_recipients(spec),
        build_message(spec),
        SmtpOptions(timeout=10, auth="LOGIN", user=SMTP_USER, password=SMTP_PASSWORD),
        watch=capture.watch,
    )
    assert result.error is None and result.session is not None
    assert capture.save() > 0
    with open_capture(str(tmp_path / "sent.pcap")) as reader:
        [read] = list(Pipeline(keep_transcript=True).run(reader))
    shown = [(line.direction, line.text, line.note) for line in result.session.transcript]
    captured = [(line.direction, line.text, line.note) for line in read.transcript]
    assert shown == captured
    [txn] = read.transactions
    assert txn.rcpt_to == ["to@example.com", "cc@example.com", "hidden@example.com"]
    assert txn.bcc == ["hidden@example.com"]
    message = email.message_from_bytes(server.received[-1].content)
    assert message["Message-ID"] == txn.message.message_id if txn.message else False


@contextmanager
def _hostile(*chunks: bytes) -> Iterator[int]:
    """A loopback peer that answers one connection with `chunks`, then reads until closed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            try:
                for chunk in chunks:
                    conn.sendall(chunk)
                conn.settimeout(10)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        thread.join(timeout=15)


def _deliver_to(port: int) -> SendResult:
    return deliver(
        "127.0.0.1", port, "a@b.example", ["c@d.example"], b"x\r\n", SmtpOptions(timeout=5)
    )


def test_a_peer_that_is_not_smtp_is_a_clear_error() -> None:
    with _hostile(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        result = _deliver_to(port)
    assert isinstance(result.error, NetworkError)
    assert result.error.message == "not an SMTP reply: 'SSH-2.0-OpenSSH_9.2'"


def test_an_endless_line_is_refused_at_the_line_limit() -> None:
    with _hostile(b"220 " + b"x" * (MAX_LINE + 10)) as port:
        result = _deliver_to(port)
    assert isinstance(result.error, NetworkError)
    assert result.error.message == f"the server sent a line longer than {MAX_LINE} bytes"


def test_a_server_that_stops_answering_times_out_with_the_transcript_so_far() -> None:
    with _hostile(b"220 hi\r\n") as port:
        result = deliver(
            "127.0.0.1", port, "a@b.example", ["c@d.example"], b"x\r\n", SmtpOptions(timeout=1)
        )
    assert isinstance(result.error, NetworkError)
    assert result.session is not None
    assert [line.text for line in result.session.transcript][:2] == ["220 hi", "EHLO localhost"]


def test_a_greeting_refusal_is_rejected_with_its_reply() -> None:
    with _hostile(b"554 no service for you\r\n") as port:
        result = _deliver_to(port)
    assert isinstance(result.error, RejectedError)
    assert result.error.message == "the server refused the connection: 554 no service for you"
