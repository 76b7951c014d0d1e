"""The export hook: session handlers hand each message's bytes to a sink (RFC 5321, 1939)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsniff.mail.mime import MessageSink
from mailsniff.model import Message, Protocol, RetrievedMessage, Session, Transaction
from mailsniff.protocols.base import Direction
from mailsniff.session.pop3 import Pop3SessionHandler
from mailsniff.session.smtp import SmtpSessionHandler
from tests.factories import make_session

C, S = Direction.CLIENT, Direction.SERVER


@dataclass
class Spy:
    chunks: list[bytes] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    ended: list[tuple[Message, Transaction | RetrievedMessage]] = field(default_factory=list)
    abandoned: bool = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def gap(self, length: int) -> None:
        self.gaps.append(length)

    def end(self, message: Message, owner: Transaction | RetrievedMessage) -> None:
        self.ended.append((message, owner))

    def abandon(self) -> None:
        self.abandoned = True


def session(protocol: Protocol) -> Session:
    return make_session(protocol, keep_transcript=False)


class Opener:
    def __init__(self) -> None:
        self.spies: list[Spy] = []

    def __call__(self, s: Session) -> MessageSink | None:
        self.spies.append(Spy())
        return self.spies[-1]


SMTP = [
    (S, b"220 mx ESMTP\r\n"),
    (C, b"EHLO c\r\n"),
    (S, b"250 mx\r\n"),
    (C, b"MAIL FROM:<a@x>\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"RCPT TO:<b@x>\r\n"),
    (S, b"250 ok\r\n"),
    (C, b"DATA\r\n"),
    (S, b"354 go\r\n"),
    (C, b"Subject: one\r\n\r\n..dot\r\nline\r\n"),
    (C, b".\r\n"),
    (S, b"250 queued\r\n"),
    (C, b"QUIT\r\n"),
    (S, b"221 bye\r\n"),
]


def test_smtp_handler_streams_the_unstuffed_message_to_its_sink_and_ends_it() -> None:
    opener = Opener()
    s = session(Protocol.SMTP)
    handler = SmtpSessionHandler(s, open_sink=opener)
    for direction, data in SMTP:
        for i in range(len(data)):  # byte by byte: the sink still sees every byte once
            handler.data(0, direction, data[i : i + 1])
    handler.close(0)
    (spy,) = opener.spies
    assert b"".join(spy.chunks) == b"Subject: one\r\n\r\n.dot\r\nline\r\n"
    ((message, owner),) = spy.ended
    assert owner is s.transactions[0] and message is owner.message
    assert message.size == len(b"".join(spy.chunks))
    assert not spy.abandoned


def test_smtp_handler_without_an_opener_builds_the_same_session() -> None:
    with_sink, without = session(Protocol.SMTP), session(Protocol.SMTP)
    a, b = SmtpSessionHandler(with_sink, open_sink=Opener()), SmtpSessionHandler(without)
    for direction, data in SMTP:
        a.data(0, direction, data)
        b.data(0, direction, data)
    a.close(0)
    b.close(0)
    assert with_sink == without


def test_pop3_handler_ends_retr_and_a_body_cut_by_the_close_as_partial() -> None:
    opener = Opener()
    s = session(Protocol.POP3)
    handler = Pop3SessionHandler(s, open_sink=opener)
    for direction, data in [
        (S, b"+OK ready\r\n"),
        (C, b"RETR 1\r\n"),
        (S, b"+OK 20 octets\r\nSubject: a\r\n\r\nbody\r\n.\r\n"),
        (C, b"RETR 2\r\n"),
        (S, b"+OK\r\nSubject: b\r\n\r\ncut"),
    ]:
        handler.data(0, direction, data)
    handler.close(0)
    first, second = opener.spies
    assert b"".join(first.chunks) == b"Subject: a\r\n\r\nbody\r\n"
    assert [owner for _, owner in first.ended] == [s.messages[0]]
    # the parser ends the cut body at the close: a partial message, exported as such
    assert b"".join(second.chunks) == b"Subject: b\r\n\r\ncut"
    assert [owner for _, owner in second.ended] == [s.messages[1]]
    assert s.messages[1].partial and not second.abandoned
