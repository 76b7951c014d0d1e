"""SmtpSessionHandler: parser events folded into Session records (the seed's dialogues first)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mailsniff.model import Endpoint, Protocol, Session
from mailsniff.protocols.base import Direction
from mailsniff.session.base import SessionHandler
from mailsniff.session.smtp import SmtpSessionHandler
from tests.helpers import C, S, Step

# The seed note's 163.com session, byte for byte as the note shows it (comments dropped).
SEED_163: list[Step] = [
    (S, b"220 163.com Coremail SMTP(Anti Spam) System\r\n"),
    (C, b"EHLO smtp.163.com\r\n"),
    (
        S,
        b"250-mail\r\n250-PIPELINING\r\n250-AUTH LOGIN PLAIN\r\n250-AUTH=LOGIN PLAIN\r\n"
        b"250 8BITMIME\r\n",
    ),
    (C, b"AUTH LOGIN\r\n"),
    (S, b"334 dXNlcm5hbWU6\r\n"),
    (C, b"crazywill\r\n"),
    (S, b"334 UGFzc3dvcmQ6\r\n"),
    (C, b"mypassword\r\n"),
    (S, b"535 Error: authentication failed\r\n"),
    (C, b"AUTH LOGIN\r\n"),
    (S, b"334 dXNlcm5hbWU6\r\n"),
    (C, b"Y3Jhenl3aWxs\r\n"),
    (S, b"334 UGFzc3dvcmQ6\r\n"),
    (C, b"bXlwYXNzd29yZA==\r\n"),
    (S, b"235 Authentication successful\r\n"),
    (C, b"MAIL FROM:<test@163.com>\r\n"),
    (S, b"553 You are not authorized to send mail, authentication is required\r\n"),
    (C, b"MAIL FROM:<crazywill@163.com>\r\n"),
    (S, b"250 Mail OK\r\n"),
    (C, b"RCPT TO:<crazywill@163.com>\r\n"),
    (S, b"250 Mail OK\r\n"),
    (C, b"DATA\r\n"),
    (S, b"354 Please start mail input.\r\n"),
    (C, b"TO: crazywill@163.com\r\n"),
    (C, b"FROM: cccc@163.com\r\n"),
    (C, b"SUBJECT: test by telnet/smtp\r\n"),
    (C, b"\r\n"),
    (C, b"test, just a test.\r\n"),
    (C, b".\r\n"),
    (S, b"250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3\r\n"),
    (C, b"NOOP\r\n"),
    (S, b"250 OK\r\n"),
    (C, b"QUIT\r\n"),
    (S, b"221 Closing connection. Good bye.\r\n"),
]
SEED_163_MESSAGE = (
    b"TO: crazywill@163.com\r\nFROM: cccc@163.com\r\nSUBJECT: test by telnet/smtp\r\n\r\n"
    b"test, just a test.\r\n"
)

# The seed's server-to-server dialogue: HELO, no AUTH, GBK encoded-words in the headers.
SEED_MX_MESSAGE = (
    b"Date: Tue, 17 May 2011 10:35:22 +0800 (CST)\r\n"
    b"From: =?GBK?B?1cW3qw==?= <name@youname.com>\r\n"
    b"To: =?GBK?B?1cW3qw==?= :<tonanme@them.com>\r\n"
    b"Subject: test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=GBK\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"X-Originating-IP: [222.177.8.218]\r\n"
    b"X-Priority: 3\r\n"
    b"test\r\n"
)
SEED_MX: list[Step] = [
    (S, b"220 mx.them.com ESMTP\r\n"),
    (C, b"helo tylin\r\n"),
    (S, b"250 mx.them.com\r\n"),
    (C, b"mail from:<name@youname.com>\r\n"),
    (S, b"250 Ok\r\n"),
    (C, b"rcpt to:<tonanme@them.com>\r\n"),
    (S, b"250 Ok\r\n"),
    (C, b"data\r\n"),
    (S, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
    (C, SEED_MX_MESSAGE + b".\r\n"),
    (S, b"250 Ok: queued as 12345\r\n"),
    (C, b"quit\r\n"),
    (S, b"221 Bye\r\n"),
]


def new_session() -> Session:
    return Session(
        id=1,
        protocol=Protocol.SMTP,
        client=Endpoint("10.0.0.1", 40000),
        server=Endpoint("10.0.0.2", 25),
        start_ns=0,
        end_ns=0,
    )


def run(steps: Sequence[Step], cut: int = 0) -> Session:
    """Feed `steps` through a handler (each step in pieces of `cut` bytes when cut > 0)."""
    handler = SmtpSessionHandler(new_session())
    for i, (direction, item) in enumerate(steps):
        if isinstance(item, int):
            handler.gap(i * 1000, direction, item)
        elif cut:
            for k in range(0, len(item), cut):
                handler.data(i * 1000, direction, item[k : k + cut])
        else:
            handler.data(i * 1000, direction, item)
    handler.close(len(steps) * 1000)
    return handler.session


def test_smtp_handler_satisfies_the_session_handler_protocol() -> None:
    handler: SessionHandler = SmtpSessionHandler(new_session())
    assert handler.session.protocol is Protocol.SMTP


def test_smtp_session_seed_163_banner_helo_and_capabilities() -> None:
    s = run(SEED_163)
    assert s.banner == "220 163.com Coremail SMTP(Anti Spam) System"
    assert s.helo == "smtp.163.com"
    assert s.capabilities == ["PIPELINING", "AUTH LOGIN PLAIN", "AUTH=LOGIN PLAIN", "8BITMIME"]
    assert s.tls is False


def test_smtp_session_seed_163_plain_typed_login_fails_then_base64_login_succeeds() -> None:
    s = run(SEED_163)
    assert len(s.auth) == 2
    first, second = s.auth
    assert (first.mechanism, first.username, first.password) == ("LOGIN", "crazywill", "mypassword")
    assert first.not_base64 is True
    assert first.success is False
    assert first.reply == "535 Error: authentication failed"
    assert (second.mechanism, second.username, second.password) == (
        "LOGIN",
        "crazywill",
        "mypassword",
    )
    assert second.not_base64 is False
    assert second.success is True
    assert second.reply == "235 Authentication successful"


def test_smtp_session_seed_163_rejected_sender_then_accepted_transaction() -> None:
    s = run(SEED_163)
    assert len(s.transactions) == 2
    refused, sent = s.transactions
    assert refused.mail_from == "test@163.com"
    assert refused.mail_from_reply == (
        "553 You are not authorized to send mail, authentication is required"
    )
    assert refused.rcpts == []
    assert refused.message is None
    assert sent.mail_from == "crazywill@163.com"
    assert sent.mail_from_reply == "250 Mail OK"
    assert sent.rcpt_to == ["crazywill@163.com"]
    assert sent.rcpt_accepted == ["crazywill@163.com"]
    assert sent.rcpts[0].reply == "250 Mail OK"
    assert sent.body_command == "DATA"
    assert sent.data_reply == "250 Mail OK queued as smtp10,wKjADQ2ApxRnnqBE0CWaEw==.38326S3"


def test_smtp_session_seed_163_message_is_the_bytes_sent_without_the_terminator() -> None:
    msg = run(SEED_163).transactions[1].message
    assert msg is not None
    assert msg.size == len(SEED_163_MESSAGE)
    assert msg.sha256 == hashlib.sha256(SEED_163_MESSAGE).hexdigest()
    assert msg.gap_bytes == 0


def test_smtp_session_seed_163_transcript_notes_decoded_base64() -> None:
    s = run(SEED_163)
    notes = {(t.direction, t.text): t.note for t in s.transcript}
    assert notes[(Direction.SERVER, "334 dXNlcm5hbWU6")] == "username:"
    assert notes[(Direction.SERVER, "334 UGFzc3dvcmQ6")] == "Password:"
    assert notes[(Direction.CLIENT, "Y3Jhenl3aWxs")] == "crazywill"
    assert notes[(Direction.CLIENT, "bXlwYXNzd29yZA==")] == "mypassword"
    assert notes[(Direction.CLIENT, "crazywill")] == "not base64"
    texts = [t.text for t in s.transcript]
    assert texts[:3] == [
        "220 163.com Coremail SMTP(Anti Spam) System",
        "EHLO smtp.163.com",
        "250-mail",
    ]
    assert "SUBJECT: test by telnet/smtp" in texts
    assert "." in texts and texts[-1] == "221 Closing connection. Good bye."


def test_smtp_session_seed_163_exchanges_pair_each_command_with_its_first_reply_line() -> None:
    s = run(SEED_163)
    table = [(e.command, e.argument, e.reply) for e in s.exchanges]
    assert table[0] == ("EHLO", "smtp.163.com", "250 mail")
    assert s.exchanges[0].reply_lines == 5
    assert (
        "MAIL",
        "FROM:<test@163.com>",
        ("553 You are not authorized to send mail, authentication is required"),
    ) in table
    assert ("DATA", "", "354 Please start mail input.") in table
    assert table[-2:] == [("NOOP", "", "250 OK"), ("QUIT", "", "221 Closing connection. Good bye.")]


def test_smtp_session_seed_163_same_records_when_fed_byte_by_byte() -> None:
    whole, by_byte = run(SEED_163), run(SEED_163, cut=1)
    assert by_byte.auth == whole.auth
    assert by_byte.transactions == whole.transactions
    assert by_byte.transcript == whole.transcript
    assert by_byte.exchanges == whole.exchanges


def test_smtp_session_seed_server_to_server_helo_dialogue() -> None:
    s = run(SEED_MX)
    assert s.banner == "220 mx.them.com ESMTP"
    assert s.helo == "tylin"
    assert s.auth == []
    assert s.capabilities == []
    (txn,) = s.transactions
    assert txn.mail_from == "name@youname.com"
    assert txn.rcpt_to == ["tonanme@them.com"]
    assert txn.data_reply == "250 Ok: queued as 12345"
    assert txn.message is not None
    assert txn.message.sha256 == hashlib.sha256(SEED_MX_MESSAGE).hexdigest()
