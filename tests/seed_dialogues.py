"""The seed note's POP3 dialogue as bytes: one copy for the parser and session tests."""

from __future__ import annotations

from tests.helpers import C, S, Step

SEED_RETR_LINES = [
    b"Received: from smtp.63.com (unknown [58.252.70.158])",
    b"by smtp5 (Coremail) with SMTP id wKjREDrA9gIfFqlEjCnRAg==.29062S4;",
    b"Mon, 03 Jul 2006 21:07:18 +0800 (CST)",
    b"TO: crazywill@163.com",
    b"FROM : cccc@163.com",
    b"SUBJECT: test by telnet/smtp",
    b"Message-Id: <44A91687.0E6F6C.07562>",
    b"Date: Mon, 3 Jul 2006 21:07:19 +0800 (CST)",
    b"Sender: crazywill@163.com",
    b"",
    b"test, just a test.",
]
SEED_RETR = b"".join(line + b"\r\n" for line in SEED_RETR_LINES)
SEED_TOP = b"".join(line + b"\r\n" for line in SEED_RETR_LINES[:9])

#: The seed note's POP3 session, exactly as typed and answered (LIST shortened as in the note).
SEED_SESSION: list[Step] = [
    (S, b"+OK Welcome to coremail Mail Pop3 Server (163com[20050206])\r\n"),
    (C, b"USER crazywill\r\n"),
    (S, b"+OK core mail\r\n"),
    (C, b"PASS mypassword\r\n"),
    (S, b"+OK 254 message(s) [27676669 byte(s)]\r\n"),
    (C, b"STAT\r\n"),
    (S, b"+OK 254 27676669\r\n"),
    (C, b"LIST\r\n"),
    (
        S,
        b"+OK 254 27676669\r\n1 2468\r\n2 21945\r\n3 33136\r\n4 2071\r\n5 3364\r\n"
        b"6 18906\r\n7 3136\r\n8 24764\r\n.\r\n",
    ),
    (C, b"TOP 254 0\r\n"),
    (S, b"+OK core mail\r\n" + SEED_TOP + b".\r\n"),
    (C, b"RETR 254\r\n"),
    (S, b"+OK 354 octets\r\n" + SEED_RETR + b".\r\n"),
    (C, b"DELE 254\r\n"),
    (S, b"+OK core mail\r\n"),
    (C, b"STAT\r\n"),
    (S, b"+OK 253 27676315\r\n"),
    (C, b"QUIT\r\n"),
    (S, b"+OK core mail\r\n"),
]
