"""Envelope vs headers and findings, on hand-built records."""

from __future__ import annotations

from mailsniff.analysis.bcc import compare_envelope
from mailsniff.analysis.findings import KINDS, analyse
from mailsniff.model import (
    Address,
    AuthAttempt,
    Endpoint,
    Gap,
    Message,
    Protocol,
    RcptAttempt,
    RetrievedMessage,
    Session,
    Transaction,
)
from mailsniff.protocols.base import Direction


def _message(**kw: list[Address]) -> Message:
    return Message(size=10, sha256="0" * 64, **kw)  # type: ignore[arg-type]


def _session(protocol: Protocol = Protocol.SMTP) -> Session:
    return Session(
        id=1,
        protocol=protocol,
        client=Endpoint("192.168.1.100", 40000),
        server=Endpoint("202.108.5.81", 25),
        start_ns=0,
        end_ns=0,
    )


def test_compare_envelope_finds_bcc_in_envelope_order_and_header_only() -> None:
    tx = Transaction(
        mail_from="alice@example.com",
        rcpts=[
            RcptAttempt("Dave@Example.com", reply="250 ok"),
            RcptAttempt("bob@example.com", reply="250 ok"),
            RcptAttempt("eve@example.com", reply="550 no such user"),
            RcptAttempt("carol@example.com", reply="250 ok"),
            RcptAttempt("zed@example.com", reply=None),
        ],
        message=_message(
            to=[Address("Bob", "BOB@example.com"), Address("", "eve@example.com")],
            cc=[Address("Carol", "carol@example.com"), Address("Frank", "frank@example.com")],
        ),
    )
    compare_envelope(tx)
    # rejected eve is not a Bcc; the uncaptured reply (zed) counts as accepted
    assert tx.bcc == ["Dave@Example.com", "zed@example.com"]
    assert tx.header_only == ["eve@example.com", "frank@example.com"]


def test_compare_envelope_without_message_reports_nothing() -> None:
    tx = Transaction(mail_from="a@x", rcpts=[RcptAttempt("b@x", reply="250 ok")])
    compare_envelope(tx)
    assert tx.bcc == [] and tx.header_only == []


def test_compare_envelope_group_syntax_hides_everyone() -> None:
    tx = Transaction(
        mail_from="a@x",
        rcpts=[RcptAttempt("b@x", reply="250 ok"), RcptAttempt("b@x", reply="250 ok")],
        message=_message(to=[Address("undisclosed-recipients", "")]),
    )
    compare_envelope(tx)
    assert tx.bcc == ["b@x"]  # listed once though RCPT'd twice
    assert tx.header_only == []


def test_analyse_seed_smtp_session_findings() -> None:
    s = _session()
    s.auth = [
        AuthAttempt(
            "LOGIN",
            "crazywill",
            "mypassword",
            False,
            "535 Error: authentication failed",
            not_base64=True,
        ),
        AuthAttempt("LOGIN", "crazywill", "mypassword", True, "235 Authentication successful"),
    ]
    s.transactions = [
        Transaction(
            mail_from="test@163.com",
            mail_from_reply="553 You are not authorized to send mail, authentication is required",
        ),
        Transaction(
            mail_from="crazywill@163.com",
            mail_from_reply="250 Mail OK",
            rcpts=[RcptAttempt("crazywill@163.com", reply="250 Mail OK")],
            message=_message(
                to=[Address("", "crazywill@163.com")], from_=[Address("", "cccc@163.com")]
            ),
            data_reply="250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3",
        ),
    ]
    analyse(s)
    kinds = [f.kind for f in s.findings]
    assert kinds.count("cleartext-credentials") == 2
    assert kinds.count("auth-failed") == 1
    assert "typed without base64" in s.findings[0].detail
    assert kinds.count("sender-rejected") == 1
    mismatch = [f.detail for f in s.findings if f.kind == "from-mismatch"]
    assert len(mismatch) == 1
    assert "cccc@163.com" in mismatch[0]
    assert "MAIL FROM <crazywill@163.com>" in mismatch[0]
    assert "authenticated user crazywill" in mismatch[0]
    assert "bcc" not in kinds
    assert set(kinds) <= set(KINDS)


def test_analyse_from_matching_user_local_part_is_not_a_mismatch() -> None:
    s = _session()
    s.auth = [AuthAttempt("PLAIN", "crazywill", "pw", True, "235 ok")]
    s.transactions = [
        Transaction(
            mail_from="crazywill@163.com",
            rcpts=[RcptAttempt("x@y", reply="250 ok")],
            message=_message(from_=[Address("Will", "CrazyWill@163.com")], to=[Address("", "x@y")]),
        )
    ]
    analyse(s)
    assert [f.kind for f in s.findings] == ["cleartext-credentials"]


def test_analyse_reports_bcc_bcc_header_rejections_and_gaps() -> None:
    s = _session()
    s.gaps = [Gap(Direction.CLIENT, 1200, 1448)]
    s.transactions = [
        Transaction(
            mail_from="alice@example.com",
            rcpts=[
                RcptAttempt("bob@example.com", reply="250 ok"),
                RcptAttempt("dave@example.com", reply="250 ok"),
                RcptAttempt("nobody@example.com", reply="550 5.1.1 no such user"),
            ],
            message=_message(
                from_=[Address("Alice", "alice@example.com")],
                to=[Address("", "bob@example.com")],
                bcc=[Address("", "dave@example.com")],
            ),
        )
    ]
    analyse(s)
    by_kind = {f.kind: f.detail for f in s.findings}
    assert "dave@example.com" in by_kind["bcc"]
    assert "dave@example.com" in by_kind["bcc-header-present"]
    assert "550 5.1.1" in by_kind["recipient-rejected"]
    assert by_kind["gap"] == "1448 client bytes never captured at offset 1200"
    assert "from-mismatch" not in by_kind


def test_analyse_pop3_forged_from_against_sender() -> None:
    s = _session(Protocol.POP3)
    s.auth = [AuthAttempt("USER", "crazywill", "mypassword", True, "+OK")]
    s.messages = [
        RetrievedMessage(
            "RETR 254",
            254,
            False,
            _message(
                from_=[Address("", "cccc@163.com")], sender=[Address("", "crazywill@163.com")]
            ),
        )
    ]
    analyse(s)
    mismatch = [f.detail for f in s.findings if f.kind == "from-mismatch"]
    assert mismatch == ["RETR 254: header From cccc@163.com differs from Sender crazywill@163.com"]


def test_analyse_caps_anomaly_findings() -> None:
    s = _session()
    s.anomalies = [f"garbage line {i}" for i in range(50)]
    analyse(s)
    anomalies = [f for f in s.findings if f.kind == "anomaly"]
    assert len(anomalies) == 21
    assert anomalies[-1].detail == "... and 30 more anomalies"


def test_analyse_is_idempotent() -> None:
    s = _session()
    s.auth = [AuthAttempt("LOGIN", "u", "p", False, "535 no")]
    analyse(s)
    first = list(s.findings)
    analyse(s)
    assert s.findings == first


def test_analyse_reports_a_message_refused_after_data() -> None:
    s = _session()
    s.transactions = [
        Transaction(
            mail_from="a@x",
            mail_from_reply="250 ok",
            rcpts=[RcptAttempt("b@x", reply="250 ok")],
            data_reply="554 5.7.1 Message contains virus: rejected.",
        ),
        Transaction(
            mail_from="a@x", rcpts=[RcptAttempt("c@x", reply="250 ok")], data_reply="250 ok"
        ),
    ]
    analyse(s)
    assert [f.detail for f in s.findings if f.kind == "message-rejected"] == [
        "transaction 1: 554 5.7.1 Message contains virus: rejected."
    ]
