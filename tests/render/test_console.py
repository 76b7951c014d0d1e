"""The rich console renderer shows the seed's sessions faithfully and never obeys captured text."""

from __future__ import annotations

import io
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from mailsniff.analysis.kinds import FindingKind
from mailsniff.model import (
    Address,
    Attachment,
    AuthAttempt,
    Endpoint,
    Exchange,
    Finding,
    Gap,
    Message,
    Protocol,
    RcptAttempt,
    RetrievedMessage,
    Session,
    Transaction,
    TranscriptLine,
)
from mailsniff.protocols.base import Direction
from mailsniff.render.console import (
    _OVERVIEW_HEADERS,
    render_overview,
    render_session,
    render_summary,
)

T0 = 1_151_932_038_000_000_000  # 2006-07-03T13:07:18Z, the seed's Received: date
MS = 1_000_000
C = Direction.CLIENT
S = Direction.SERVER

QUEUED = "250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3"
NOT_AUTHORIZED = "553 You are not authorized to send mail, authentication is required"


def plain_console(width: int = 140) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=False), out


def tty_console(width: int = 140) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=True, color_system="truecolor"), out


def seed_smtp_session() -> Session:
    """The seed's 163.com session: plain AUTH LOGIN fails, base64 succeeds, 553 then 250."""
    script: list[tuple[Direction, str, str | None]] = [
        (S, "220 163.com Coremail SMTP(Anti Spam) System", None),
        (C, "EHLO smtp.163.com", None),
        (S, "250-mail", None),
        (S, "250-PIPELINING", None),
        (S, "250-AUTH LOGIN PLAIN", None),
        (S, "250-AUTH=LOGIN PLAIN", None),
        (S, "250 8BITMIME", None),
        (C, "AUTH LOGIN", None),
        (S, "334 dXNlcm5hbWU6", "username:"),
        (C, "crazywill", "not base64"),
        (S, "334 UGFzc3dvcmQ6", "Password:"),
        (C, "mypassword", "not base64"),
        (S, "535 Error: authentication failed", None),
        (C, "AUTH LOGIN", None),
        (S, "334 dXNlcm5hbWU6", "username:"),
        (C, "Y3Jhenl3aWxs", "crazywill"),
        (S, "334 UGFzc3dvcmQ6", "Password:"),
        (C, "bXlwYXNzd29yZA==", "mypassword"),
        (S, "235 Authentication successful", None),
        (C, "MAIL FROM:<test@163.com>", None),
        (S, NOT_AUTHORIZED, None),
        (C, "MAIL FROM:<crazywill@163.com>", None),
        (S, "250 Mail OK", None),
        (C, "RCPT TO:<crazywill@163.com>", None),
        (S, "250 Mail OK", None),
        (C, "RCPT TO:<hidden@example.org>", None),
        (S, "250 Mail OK", None),
        (C, "RCPT TO:<nobody@163.com>", None),
        (S, "550 User not found: nobody@163.com", None),
        (C, "DATA", None),
        (S, "354 Please start mail input.", None),
        (C, "TO: crazywill@163.com, shown@163.com", "message line"),
        (C, "FROM: cccc@163.com", "message line"),
        (C, "SUBJECT: test by telnet/smtp", "message line"),
        (C, "", "message line"),
        (C, "test, just a test.", "message line"),
        (C, ".", "end of data"),
        (S, QUEUED, None),
        (C, "NOOP", None),
        (S, "250 OK", None),
        (C, "QUIT", None),
        (S, "221 Closing connection. Good bye.", None),
    ]
    transcript = [
        TranscriptLine(T0 + i * 10 * MS, d, text, note) for i, (d, text, note) in enumerate(script)
    ]
    message = Message(
        size=118,
        sha256="9f" * 32,
        from_=[Address("", "cccc@163.com")],
        to=[Address("", "crazywill@163.com"), Address("Shown Person", "shown@163.com")],
        subject="test by telnet/smtp",
        headers=[
            ("TO", "crazywill@163.com, shown@163.com"),
            ("FROM", "cccc@163.com"),
            ("SUBJECT", "test by telnet/smtp"),
        ],
    )
    return Session(
        id=1,
        protocol=Protocol.SMTP,
        client=Endpoint("192.168.0.10", 40112),
        server=Endpoint("202.108.5.81", 25),
        start_ns=T0,
        end_ns=T0 + 420 * MS,
        complete=True,
        banner="220 163.com Coremail SMTP(Anti Spam) System",
        helo="smtp.163.com",
        capabilities=["mail", "PIPELINING", "AUTH LOGIN PLAIN", "AUTH=LOGIN PLAIN", "8BITMIME"],
        auth=[
            AuthAttempt(
                "LOGIN",
                username="crazywill",
                password="mypassword",
                success=False,
                reply="535 Error: authentication failed",
                ts_ns=T0 + 70 * MS,
                not_base64=True,
            ),
            AuthAttempt(
                "LOGIN",
                username="crazywill",
                password="mypassword",
                success=True,
                reply="235 Authentication successful",
                ts_ns=T0 + 130 * MS,
            ),
        ],
        transactions=[
            Transaction(mail_from="test@163.com", mail_from_reply=NOT_AUTHORIZED),
            Transaction(
                mail_from="crazywill@163.com",
                mail_from_reply="250 Mail OK",
                rcpts=[
                    RcptAttempt("crazywill@163.com", reply="250 Mail OK", role="to"),
                    RcptAttempt("hidden@example.org", reply="250 Mail OK", role="bcc"),
                    RcptAttempt(
                        "nobody@163.com",
                        reply="550 User not found: nobody@163.com",
                        role="rejected",
                    ),
                ],
                data_reply=QUEUED,
                message=message,
                bcc=["hidden@example.org"],
                header_only=["shown@163.com"],
                body_command="DATA",
            ),
        ],
        findings=[
            Finding("cleartext-credentials", "AUTH LOGIN crazywill over an unencrypted connection"),
            Finding("auth-failed", "AUTH LOGIN crazywill: 535 Error: authentication failed"),
            Finding("sender-rejected", f"MAIL FROM:<test@163.com>: {NOT_AUTHORIZED}"),
            Finding("from-mismatch", "header From cccc@163.com, MAIL FROM crazywill@163.com"),
            Finding("bcc", "hidden@example.org received the message without being in To/Cc"),
        ],
        transcript=transcript,
        close_reason="fin",
        handshake_seen=True,
        packets=48,
        client_bytes=412,
        server_bytes=733,
    )


def seed_pop3_session() -> Session:
    """The seed's pop.163.com session: USER/PASS, STAT, TOP, RETR, DELE, STAT."""
    headers = [
        ("Received", "from smtp.63.com (unknown [58.252.70.158]) by smtp5 (Coremail)"),
        ("TO", "crazywill@163.com"),
        ("FROM", "cccc@163.com"),
        ("SUBJECT", "test by telnet/smtp"),
        ("Message-Id", "<44A91687.0E6F6C.07562>"),
        ("Date", "Mon, 3 Jul 2006 21:07:19 +0800 (CST)"),
        ("Sender", "crazywill@163.com"),
    ]

    def message(size: int) -> Message:
        return Message(
            size=size,
            sha256="ab" * 32,
            from_=[Address("", "cccc@163.com")],
            sender=[Address("", "crazywill@163.com")],
            to=[Address("", "crazywill@163.com")],
            subject="test by telnet/smtp",
            date="Mon, 3 Jul 2006 21:07:19 +0800 (CST)",
            message_id="<44A91687.0E6F6C.07562>",
            headers=list(headers),
        )

    t = T0 + 3_600_000 * MS
    return Session(
        id=2,
        protocol=Protocol.POP3,
        client=Endpoint("192.168.0.10", 40200),
        server=Endpoint("202.108.5.104", 110),
        start_ns=t,
        end_ns=t + 2_000 * MS,
        complete=False,
        gaps=[Gap(Direction.SERVER, 5120, 1460)],
        banner="+OK Welcome to coremail Mail Pop3 Server (163com[20050206])",
        auth=[
            AuthAttempt(
                "USER",
                username="crazywill",
                password="mypassword",
                success=True,
                reply="+OK 254 message(s) [27676669 byte(s)]",
                ts_ns=t + 20 * MS,
            )
        ],
        exchanges=[
            Exchange(t + 10 * MS, "USER", "crazywill", "+OK core mail"),
            Exchange(t + 20 * MS, "PASS", "mypassword", "+OK 254 message(s) [27676669 byte(s)]"),
            Exchange(t + 30 * MS, "STAT", "", "+OK 254 27676669"),
            Exchange(t + 40 * MS, "TOP", "254 0", "+OK core mail", reply_lines=9),
            Exchange(t + 50 * MS, "RETR", "254", "+OK 354 octets", reply_lines=11),
            Exchange(t + 60 * MS, "DELE", "254", "+OK core mail"),
            Exchange(t + 70 * MS, "STAT", "", "+OK 253 27676315"),
            Exchange(t + 80 * MS, "QUIT", "", "+OK core mail"),
        ],
        mailbox_stats=[(254, 27676669), (253, 27676315)],
        messages=[
            RetrievedMessage("TOP 254 0", 254, True, message(316), ts_ns=t + 40 * MS),
            RetrievedMessage("RETR 254", 254, False, message(354), ts_ns=t + 50 * MS),
        ],
        deleted=[254],
        findings=[
            Finding("cleartext-credentials", "POP3 USER/PASS crazywill in clear"),
            Finding("from-mismatch", "RETR 254: From cccc@163.com, Sender crazywill@163.com"),
            Finding("gap", "server: 1460 bytes missing at offset 5120"),
        ],
        close_reason="fin",
        handshake_seen=True,
    )


def render(session: Session, *, transcript: bool = False) -> str:
    console, out = plain_console()
    render_session(console, session, transcript=transcript)
    return out.getvalue()


def line_with(text: str, *needles: str) -> str:
    """The one rendered line that contains every one of `needles`."""
    lines = [line for line in text.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, (needles, lines)
    return lines[0]


def line_starting(text: str, pattern: str) -> str:
    """The one rendered line (box borders and padding ignored) that starts with `pattern`."""
    regex = re.compile(r"^[\s│┃]*" + pattern)
    lines = [line for line in text.splitlines() if regex.match(line)]
    assert len(lines) == 1, (pattern, lines)
    return lines[0]


# --------------------------------------------------------------------------- SMTP


def test_render_session_shows_endpoints_banner_helo_and_capabilities() -> None:
    text = render(seed_smtp_session())
    assert "192.168.0.10:40112 -> 202.108.5.81:25" in text
    assert "220 163.com Coremail SMTP(Anti Spam) System" in text
    assert "smtp.163.com" in line_with(text, "helo")
    assert "AUTH=LOGIN PLAIN" in line_with(text, "capabilities")
    assert "2006-07-03T13:07:18.000000Z" in text
    assert "2006-07-03T13:07:18.420000Z" in text


def test_render_session_auth_table_shows_decoded_credentials_and_outcomes() -> None:
    text = render(seed_smtp_session())
    failed = line_with(text, "mypassword", "535 Error: authentication failed")
    assert "crazywill" in failed
    assert "typed without base64" in failed
    assert "\u2717" in failed
    succeeded = line_with(text, "mypassword", "235 Authentication successful")
    assert "crazywill" in succeeded
    assert "\u2713" in succeeded
    assert "typed without base64" not in succeeded


def test_render_session_shows_the_553_mail_from_reply() -> None:
    text = render(seed_smtp_session())
    assert "<test@163.com>" in text
    assert NOT_AUTHORIZED in line_with(text, "MAIL FROM reply", "553")


def test_render_session_marks_the_bcc_recipient_on_its_row() -> None:
    text = render(seed_smtp_session())
    row = line_with(text, "hidden@example.org", "250 Mail OK")
    assert "Bcc (envelope only)" in row
    assert "250 Mail OK" in row


def test_render_session_marks_header_only_and_rejected_addresses() -> None:
    text = render(seed_smtp_session())
    shown = line_with(text, "shown@163.com ")
    assert "header only" in shown
    assert "Shown Person" in shown
    rejected = line_with(text, "User not found")
    assert "nobody@163.com" in rejected and "rejected" in rejected
    visible = line_with(text, "crazywill@163.com", "250 Mail OK")
    assert re.search(r"\bTo\b", visible) and "Bcc" not in visible


def test_render_session_puts_mail_from_beside_the_forged_header_from() -> None:
    text = render(seed_smtp_session())
    assert "cccc@163.com" in line_starting(text, "header From ")
    assert "<crazywill@163.com>" in line_with(text, "MAIL FROM ", "<crazywill")
    assert "test by telnet/smtp" in line_starting(text, "Subject ")
    assert QUEUED in line_starting(text, "DATA reply ")
    assert "9f9f9f9f" in line_starting(text, "sha256 ")


def test_render_session_highlights_every_finding_with_its_detail() -> None:
    session = seed_smtp_session()
    text = render(session)
    for finding in session.findings:
        assert finding.kind in line_with(text, finding.detail[:40])


def test_render_session_lists_attachments_with_sha256_prefix() -> None:
    session = seed_smtp_session()
    message = session.transactions[1].message
    assert message is not None
    message.attachments.append(
        Attachment("report.pdf", "application/pdf", 31_900, "0123456789abcdef" + "f" * 48)
    )
    row = line_with(render(session), "report.pdf")
    assert "application/pdf" in row and "31.2 KiB" in row
    assert "0123456789abcdef\u2026" in row and "f" * 48 not in row


def test_render_session_transcript_shows_decoded_base64_beside_the_line() -> None:
    text = render(seed_smtp_session(), transcript=True)
    assert "Y3Jhenl3aWxs  \u2192 crazywill" in text
    assert "bXlwYXNzd29yZA==  \u2192 mypassword" in text
    assert "334 dXNlcm5hbWU6  \u2192 username:" in text
    assert "13:07:18.000000 S: 220 163.com Coremail" in text
    assert "13:07:18.010000 C: EHLO smtp.163.com" in text
    assert "lines not kept" not in text


def test_render_session_without_transcript_flag_leaves_the_dialogue_out() -> None:
    assert "Y3Jhenl3aWxs" not in render(seed_smtp_session())


def test_render_session_transcript_says_how_many_lines_were_dropped() -> None:
    session = seed_smtp_session()
    session.transcript_dropped = 1234
    assert "1234 transcript lines not kept" in render(session, transcript=True)


def test_render_session_transcript_colours_client_and_server_differently() -> None:
    console, out = tty_console()
    render_session(console, seed_smtp_session(), transcript=True)
    text = out.getvalue()
    client = re.search(r"(\x1b\[[0-9;]*m)C: \x1b\[0m\x1b\[[0-9;]*mEHLO", text)
    server = re.search(r"(\x1b\[[0-9;]*m)S: \x1b\[0m\x1b\[[0-9;]*m250 8BITMIME", text)
    assert client and server
    assert client.group(1) != server.group(1)


def test_render_session_xoauth2_token_is_shortened() -> None:
    session = seed_smtp_session()
    token = "ya29.A0ARrdaM" + "x" * 200
    session.auth = [
        AuthAttempt("XOAUTH2", username="u@gmail.com", password=token, success=True, reply="235")
    ]
    text = render(session)
    row = line_with(text, "u@gmail.com")
    assert "ya29.A0ARrda\u2026" in row and "213 chars" in row
    assert "x" * 50 not in text


def test_render_session_pop3_xoauth2_token_in_response_is_shortened_too() -> None:
    session = seed_pop3_session()
    token = "ya29.A0ARrdaM" + "y" * 100
    session.auth = [AuthAttempt("XOAUTH2", username="u@gmail.com", response=token, success=True)]
    row = line_with(render(session), "u@gmail.com")
    assert "ya29.A0ARrda\u2026" in row and "113 chars" in row
    assert "y" * 50 not in render(session)


def test_render_session_cram_md5_shows_challenge_and_response() -> None:
    session = seed_smtp_session()
    session.auth = [
        AuthAttempt(
            "CRAM-MD5",
            username="tim",
            challenge="<1896.697170952@postoffice.example.net>",
            response="b913a602c7eda7a495b4e6e7334d3890",
            success=None,
        )
    ]
    text = render(session)
    row = line_with(text, "CRAM-MD5", "tim ")
    assert "challenge <1896.697170952@postoffice.example.net>" in row
    assert "?" in row and "(no reply captured)" in row
    assert "response b913a602c7eda7a495b4e6e7334d3890" in text


def test_render_session_reports_implicit_tls_as_not_parsed() -> None:
    session = Session(
        id=9,
        protocol=Protocol.SMTP,
        client=Endpoint("2001:db8::1", 50000),
        server=Endpoint("2001:db8::25", 465),
        start_ns=T0,
        end_ns=T0 + MS,
        implicit_tls=True,
    )
    text = render(session)
    assert "[2001:db8::1]:50000 -> [2001:db8::25]:465" in text
    assert "encrypted: not parsed" in line_with(text, "implicit TLS")


# --------------------------------------------------------------------------- POP3


def test_render_session_pop3_command_table_lists_each_exchange() -> None:
    text = render(seed_pop3_session())
    assert "+OK 254 27676669" in line_with(text, "+OK 254 27676669")
    top = line_with(text, "TOP", "+OK core mail")
    assert "254 0" in top and "(+8 lines)" in top
    assert "mypassword" in line_with(text, "PASS", "+OK")
    assert "254" in line_with(text, "DELE", "+OK")


def test_render_session_pop3_shows_mailbox_stats_and_deleted_numbers() -> None:
    text = render(seed_pop3_session())
    assert "254 messages, 27676669 octets" in text
    assert "253 messages, 27676315 octets" in text
    assert "254" in line_starting(text, "deleted ")


def test_render_session_pop3_retrieved_message_shows_forged_from_and_true_sender() -> None:
    text = render(seed_pop3_session())
    assert "RETR 254" in text and "TOP 254 0  (partial)" in text
    froms = [line for line in text.splitlines() if re.match(r"\s*From\s+cccc@163\.com", line)]
    senders = [line for line in text.splitlines() if re.match(r"\s*Sender\s+crazywill", line)]
    assert len(froms) == 2 and len(senders) >= 2


def test_render_session_pop3_lists_every_header_in_order() -> None:
    text = render(seed_pop3_session())
    start = text.index("Headers in order", text.index("Retrieved RETR 254"))
    block = text[start:]
    positions = [block.index(name) for name in ("Received", "TO ", "FROM ", "SUBJECT", "Sender")]
    assert positions == sorted(positions)


def test_render_session_lists_gaps_and_incompleteness() -> None:
    text = render(seed_pop3_session())
    assert "no; 1 gap(s)" in text
    assert "server offset 5120, 1460 bytes not captured" in text


# --------------------------------------------------------------------------- hostile text

HOSTILE = "220 [bold red]x[/] \x1b[31mred\x1b[0m \u202eevil\u202c\x07 \x9b2J"


def hostile_session() -> Session:
    session = seed_smtp_session()
    session.banner = HOSTILE
    session.helo = "[link=http://evil]click[/link]"
    session.auth[0].username = "\x1b]0;pwned\x07"
    session.transactions[1].mail_from = "a\x1b[2Jb@x"
    session.transcript.append(TranscriptLine(T0, C, "\x1b[31mred", "\u2066note\u2069"))
    return session


def test_render_session_prints_markup_in_captured_text_literally() -> None:
    text = render(hostile_session(), transcript=True)
    assert "[bold red]x[/]" in text
    assert "[link=http://evil]click[/link]" in text


def test_render_session_escapes_control_and_bidi_characters_visibly() -> None:
    text = render(hostile_session(), transcript=True)
    assert "\\x1b[31mred\\x1b[0m" in text
    assert "\\u202eevil\\u202c\\x07" in text
    assert "\\x9b2J" in text
    assert "\\x1b]0;pwned\\x07" in text
    assert "\\u2066note\\u2069" in text
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"):
        assert raw not in text


def test_render_session_on_a_terminal_never_emits_captured_escape_sequences() -> None:
    console, out = tty_console()
    render_session(console, hostile_session(), transcript=True)
    render_overview(console, [hostile_session()])
    text = out.getvalue()
    assert "\x1b[" in text  # rich's own styling is there ...
    assert "\x1b[31mred" not in text  # ... but none from the capture
    assert "\x1b[2J" not in text and "\x1b]0;pwned" not in text
    assert "\x07" not in text and "\x9b" not in text and "\u202e" not in text


def test_render_to_a_non_terminal_has_no_escape_sequences() -> None:
    console, out = plain_console()
    render_overview(console, [seed_smtp_session(), seed_pop3_session()])
    render_session(console, seed_smtp_session(), transcript=True)
    render_summary(console, sessions=[seed_smtp_session()], packets=10, warnings=["w"])
    assert "\x1b" not in out.getvalue()


def test_render_uses_no_emoji_shortcodes_or_emoji() -> None:
    session = seed_smtp_session()
    session.banner = "220 :smile: :thumbs_up:"
    text = render(session)
    assert ":smile: :thumbs_up:" in text
    assert not any(0x1F000 <= ord(ch) <= 0x1FFFF for ch in text)


# --------------------------------------------------------------------------- overview


def test_render_overview_has_one_row_per_session_with_the_key_facts() -> None:
    console, out = plain_console(width=180)
    render_overview(console, [seed_smtp_session(), seed_pop3_session()])
    text = out.getvalue()
    smtp = line_with(text, "202.108.5.81:25")
    for cell in ("smtp", "2006-07-03T13:07:18Z", "0.420s", "crazywill", "3/1", "yes", "5"):
        assert cell in smtp
    assert "<test@163.com>" in smtp
    pop3 = line_with(text, "202.108.5.104:110")
    for cell in ("pop3", "2006-07-03T14:07:18Z", "2.000s", "crazywill", "0/2", "no", "3"):
        assert cell in pop3


def test_render_overview_truncates_long_cells_with_an_ellipsis() -> None:
    session = seed_smtp_session()
    session.auth[0].username = "u" * 500
    console, out = plain_console(width=120)
    render_overview(console, [session])
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 120 for line in lines)
    row = line_with(out.getvalue(), " 1  smtp ")
    assert "uuuuuuu\u2026" in row and "u" * 100 not in row
    assert "2006-07-03T13:07:18Z" in row  # short cells keep their full width


def test_render_overview_handles_thousands_of_sessions_one_line_each() -> None:
    base = seed_smtp_session()
    sessions = []
    for n in range(2000):
        s = seed_smtp_session()
        s.id = n + 1
        s.client = Endpoint(f"10.{n // 256}.{n % 256}.1", 40000 + n)
        s.transcript = base.transcript
        sessions.append(s)
    console, out = plain_console()
    render_overview(console, sessions)
    text = out.getvalue()
    assert "Sessions (2000)" in text
    assert len([line for line in text.splitlines() if "202.108.5.81:25" in line]) == 2000
    assert "Y3Jhenl3aWxs" not in text  # no per-row detail


# --------------------------------------------------------------------------- summary


def test_render_summary_counts_sessions_messages_credentials_bcc_and_findings() -> None:
    console, out = plain_console()
    render_summary(
        console,
        sessions=[seed_smtp_session(), seed_pop3_session()],
        packets=1234,
        warnings=["capture truncated after 1234 packets"],
    )
    text = out.getvalue()
    assert "1234" in line_starting(text, "packets ")
    assert "2  (pop3 1, smtp 1)" in line_starting(text, "sessions ")
    assert "3" in line_starting(text, "messages ")
    assert "3" in line_starting(text, "credentials ")
    assert "1" in line_starting(text, "bcc recipients ")
    findings = line_starting(text, "findings ")
    assert "cleartext-credentials 2" in findings and "from-mismatch 2" in findings
    assert "gap 1" in findings
    assert "capture truncated after 1234 packets" in line_starting(text, "warning ")


def test_render_summary_of_nothing_says_so() -> None:
    console, out = plain_console()
    render_summary(console, sessions=[], packets=0, warnings=[])
    text = out.getvalue()
    assert "none" in line_starting(text, "findings ")
    assert "0" in line_starting(text, "sessions ")


@pytest.mark.parametrize("width", [40, 80, 200])
def test_render_session_fits_any_console_width(width: int) -> None:
    console, out = plain_console(width=width)
    render_session(console, seed_smtp_session(), transcript=True)
    assert all(len(line) <= width for line in out.getvalue().splitlines())


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_render_overview_on_a_narrow_console_leaves_columns_out_but_keeps_endpoints(
    width: int,
) -> None:
    console, out = plain_console(width=width)
    pop3 = seed_pop3_session()
    render_overview(console, [seed_smtp_session(), pop3])
    text = out.getvalue()
    assert all(len(line) <= width for line in text.splitlines())
    row = line_with(text, "192.168.0.10:40200 -> 202.108.5.104:110")
    assert row.split()[:2] == ["2", "pop3"]
    # findings: the kinds, the most severe first, cut with an ellipsis when narrow
    rank = {"high": 0, "medium": 1, "low": 2, "info": 3}
    ordered = sorted(pop3.findings, key=lambda f: rank[f.severity or FindingKind(f.kind).severity])
    kinds = ",".join(dict.fromkeys(f.kind for f in ordered))
    assert kinds.startswith(row.split()[-1].removesuffix("\u2026"))
    lines = text.splitlines()
    hidden = [n for n, line in enumerate(lines) if line.startswith("hidden")]
    if width >= 140:
        assert hidden == []
    else:
        # the note is one whole line (not wrapped, not cut) right above the header, and
        # names every column left out, and only those
        (n,) = hidden
        note, header = lines[n], lines[n + 1]
        assert header.split()[:2] == ["id", "proto"]
        found = re.fullmatch(
            r"hidden(?: at \d+ columns)?: (.*?)(?: \+(\d+))? \(--plain[^)]*\)", note
        )
        assert found is not None, note
        named, more = found.group(1).split(", "), int(found.group(2) or 0)
        left_out = [c.removesuffix(" (UTC)") for c in _OVERVIEW_HEADERS if c not in header]
        assert named == left_out[: len(named)] and len(named) + more == len(left_out)
        assert more == 0 or width < 80  # at 80 columns every name fits


def test_render_overview_lists_finding_kinds_not_a_count() -> None:
    console, out = plain_console(width=240)
    render_overview(console, [seed_smtp_session()])
    row = line_with(out.getvalue(), "-> 202.108.5.81:25")
    kinds = {f.kind for f in seed_smtp_session().findings}
    assert set(row.split()[-1].split(",")) == kinds


def test_render_session_shows_a_transmitted_bcc_header_and_the_null_sender() -> None:
    session = seed_smtp_session()
    t = session.transactions[1]
    t.mail_from = ""
    assert t.message is not None
    t.message.bcc = [Address("Leaked", "leaked@example.net")]
    text = render(session)
    row = line_with(text, "leaked@example.net", "Bcc header")
    assert "Bcc header (transmitted)" in row and "not in the envelope" in row
    assert line_starting(text, r"MAIL FROM\s+<>")


def test_render_session_auth_table_drops_the_time_column_on_a_narrow_console() -> None:
    session = seed_smtp_session()
    wide, wide_out = plain_console(width=140)
    narrow, narrow_out = plain_console(width=80)
    render_session(wide, session)
    render_session(narrow, session)
    assert "13:07:18.070000" in wide_out.getvalue()
    assert "13:07:18.070000" not in narrow_out.getvalue()
    assert "mypassword" in line_with(narrow_out.getvalue(), "crazywill", "\u2717")


def test_render_overview_measures_wide_characters_in_terminal_cells() -> None:
    session = seed_smtp_session()
    session.auth[0].username = "张帆" * 40
    console, out = plain_console(width=140)
    render_overview(console, [session, seed_pop3_session()])
    assert all(cell_len(line) <= 140 for line in out.getvalue().splitlines())
    row = line_with(out.getvalue(), " 1  smtp ")
    assert "张帆" in row and "\u2026" in row
    # the columns after the cut cell stay aligned with the other row's
    pop3 = line_with(out.getvalue(), " 2  pop3 ")
    assert cell_len(row[: row.index("3/1") + 3]) == cell_len(pop3[: pop3.index("0/2") + 3])


def test_render_session_does_not_repeat_an_address_used_as_its_own_name() -> None:
    s = seed_smtp_session()
    message = s.transactions[-1].message
    assert message is not None
    message.to = [Address("mirjam@abrakadabra.ch", "mirjam@abrakadabra.ch")]
    message.cc = [Address("'Carol'", "carol@example.com")]
    text = render(s)
    assert "mirjam@abrakadabra.ch <mirjam@abrakadabra.ch>" not in text
    assert "'Carol' <carol@example.com>" in text


def test_render_session_shows_the_role_analysis_gave_each_recipient() -> None:
    session = seed_smtp_session()
    txn = session.transactions[-1]
    # The record is what the console shows: a role analysis gave is not worked out again.
    txn.rcpts[1].role = "deferred"
    text = render(session)
    row = line_with(text, "hidden@example.org", "250 Mail OK")
    assert "rejected (temporary)" in row and "Bcc" not in row
