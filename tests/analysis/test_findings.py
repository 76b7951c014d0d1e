"""Envelope vs headers and findings, on hand-built records."""

from __future__ import annotations

from mailsniff.analysis.bcc import compare_envelope
from mailsniff.analysis.findings import KINDS, SEVERITY, analyse
from mailsniff.model import (
    Address,
    AnomalyKind,
    AuthAttempt,
    Finding,
    Gap,
    Message,
    Protocol,
    RcptAttempt,
    RetrievedMessage,
    Session,
    SessionAnomaly,
    Transaction,
)
from mailsniff.protocols.base import Direction
from mailsniff.protocols.smtp import SmtpAnomalyKind
from tests.factories import make_session


def _message(**kw: list[Address]) -> Message:
    return Message(size=10, sha256="0" * 64, **kw)  # type: ignore[arg-type]


def _session(protocol: Protocol = Protocol.SMTP) -> Session:
    return make_session(protocol, client=("192.168.1.100", 40000), server=("202.108.5.81", 25))


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
    # crazywill (MAIL FROM crazywill@163.com) writes as another 163.com mailbox
    [finding] = [f for f in s.findings if f.kind == "from-mismatch"]
    assert finding.severity == "medium"
    assert "another mailbox of the authenticated account's domain" in finding.detail
    assert "bcc" not in kinds
    assert set(kinds) <= set(KINDS)
    assert all(f.severity in ("info", "low", "medium", "high") for f in s.findings)
    severity = {f.kind: f.severity for f in s.findings}
    assert severity["cleartext-credentials"] == "high"
    assert severity["auth-failed"] == "low"


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
    s.anomalies = [SessionAnomaly(SmtpAnomalyKind.GARBAGE_COMMAND, f"line {i}") for i in range(50)]
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


def _mismatch(
    mail_from: str,
    header_from: str,
    user: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> list[Finding]:
    s = _session()
    if user is not None:
        s.auth = [AuthAttempt("PLAIN", user, "pw", True, "235 ok")]
    message = _message(from_=[Address("", header_from)], to=[Address("", "x@example.net")])
    message.headers = headers or []
    s.transactions = [
        Transaction(
            mail_from=mail_from,
            rcpts=[RcptAttempt("x@example.net", reply="250 ok")],
            message=message,
        )
    ]
    analyse(s)
    return [f for f in s.findings if f.kind == "from-mismatch"]


def test_from_mismatch_on_mailing_list_traffic_is_informational() -> None:
    [finding] = _mismatch(
        "python-list-bounces+bob=example.net@python.org",
        "alice@example.com",
        headers=[("List-Id", "General discussion <python-list.python.org>")],
    )
    assert finding.severity == "info"
    assert "List-Id General discussion <python-list.python.org>" in finding.detail


def test_from_mismatch_on_verp_srs_and_bounce_envelopes_is_informational() -> None:
    for envelope, why in [
        ("bounce-1234-bob=example.net@mailer.example.org", "VERP"),
        ("SRS0=HHH=TT=example.com=alice@forwarder.example.org", "SRS"),
        ("announce-owner@lists.example.org", "list or bounce"),
    ]:
        [finding] = _mismatch(envelope, "alice@example.com")
        assert finding.severity == "info", envelope
        assert why in finding.detail


def test_batv_tagged_envelope_of_the_same_sender_is_no_mismatch() -> None:
    assert _mismatch("prvs=1234abcd=alice@example.com", "alice@example.com") == []


def test_from_mismatch_without_context_is_low_in_the_same_domain_medium_across() -> None:
    [same] = _mismatch("noreply@mail.example.com", "alice@example.com")
    assert same.severity == "low"
    [across] = _mismatch("alice@example.com", "ceo@bank.example")
    assert across.severity == "medium"


def test_bare_login_owning_the_header_from_is_no_mismatch_whatever_the_envelope() -> None:
    assert _mismatch("alice@example.com", "Alice@Example.com", user="alice") == []
    # the list envelope alone differs: informational
    [finding] = _mismatch("list-bounces@lists.example.com", "alice@example.com", user="alice")
    assert finding.severity == "info" and "authenticated user" not in finding.detail


def test_header_from_in_another_domain_than_the_authenticated_account_is_high() -> None:
    [full] = _mismatch("alice@example.com", "ceo@bank.example", user="alice@example.com")
    assert full.severity == "high"
    assert "another domain than the authenticated account" in full.detail
    # a bare login takes MAIL FROM's domain when it is MAIL FROM's user
    [bare] = _mismatch("alice@example.com", "ceo@bank.example", user="alice")
    assert bare.severity == "high"
    # a bare login that is nobody's local part: its domain is unknown
    [unknown] = _mismatch("noreply@example.com", "ceo@bank.example", user="u1234")
    assert unknown.severity == "medium"


def test_every_listed_severity_names_a_kind() -> None:
    assert set(SEVERITY) <= set(KINDS)


def test_overlap_conflicts_are_found_by_kind_not_by_text() -> None:
    s = _session()
    conflict = SessionAnomaly(
        AnomalyKind.OVERLAP_CONFLICT, "40 client bytes at offset 7 differ", Direction.CLIENT, 7
    )
    # A peer's garbage line that merely reads like a conflict stays an anomaly.
    lookalike = SessionAnomaly(SmtpAnomalyKind.GARBAGE_COMMAND, "overlap-conflict: forged")
    s.anomalies = [conflict, lookalike]
    analyse(s)
    found = [(f.kind, f.detail) for f in s.findings if f.kind in ("overlap-conflict", "anomaly")]
    assert found == [
        ("overlap-conflict", "40 client bytes at offset 7 differ"),
        ("anomaly", "garbage-command: overlap-conflict: forged"),
    ]
    assert (conflict.text, conflict.direction, conflict.offset) == (
        "overlap-conflict: 40 client bytes at offset 7 differ",
        Direction.CLIENT,
        7,
    )
