"""Blocking POP3 client (RFC 1939, 2595, 2449) that records its own dialogue like `read` does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mailsniff.errors import MailsniffError, UsageError
from mailsniff.limits import MAX_MESSAGE
from mailsniff.model import Protocol, Session
from mailsniff.protocols.pop3 import parse_status
from mailsniff.send import NetworkError, RejectedError
from mailsniff.send.client import (
    Connection,
    ShowLines,
    TlsMode,
    Watch,
    open_connection,
    quit_politely,
)
from mailsniff.session.pop3 import Pop3SessionHandler

__all__ = ["PopAction", "PopOptions", "PopResult", "pop"]

#: RFC 1939 7: the APOP timestamp in the greeting, `<...>`.
_TIMESTAMP = re.compile(rb"<[^<>\s]*>")


class PopAction(StrEnum):
    STAT = "stat"
    LIST = "list"
    TOP = "top"
    RETR = "retr"
    DELE = "dele"


@dataclass(slots=True)
class PopOptions:
    user: str
    password: str
    apop: bool = False
    tls: TlsMode = TlsMode.NONE
    tls_verify: bool = False
    timeout: float = 30.0
    #: Append the TLS secrets to this key log file (SSLContext.keylog_filename).
    keylog: str | None = None


@dataclass(slots=True)
class PopResult:
    """The recorded session, what the action returned, and the error that ended it early."""

    session: Session | None
    #: STAT: (messages, octets).
    stat: tuple[int, int] | None = None
    #: LIST: (number, octets) per message.
    listing: list[tuple[int, int]] = field(default_factory=list)
    #: RETR/TOP: the message (or its head and first lines), dot-unstuffed, as sent.
    content: bytes | None = None
    saved: Path | None = None
    error: MailsniffError | None = None


class _Pop:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def status(self) -> bytes:
        line = self.conn.read_line().rstrip(b"\r\n")
        status = parse_status(line)
        if status is not None and status[0]:
            return line
        text = line.decode("utf-8", "replace")
        if status is not None:
            raise RejectedError(text)
        raise NetworkError(f"not a POP3 status line: {text[:80]!r}")

    def command(self, line: str) -> bytes:
        self.conn.send(line.encode("utf-8") + b"\r\n")
        return self.status()

    def multiline(self) -> bytes:
        """A multi-line response's body, dot-unstuffed (RFC 1939 3), bounded by MAX_MESSAGE."""
        body = bytearray()
        while True:
            line = self.conn.read_line()
            if line in (b".\r\n", b".\n"):
                return bytes(body)
            if line.startswith(b"."):
                line = line[1:]
            if len(body) + len(line) > MAX_MESSAGE:
                raise NetworkError(f"response longer than {MAX_MESSAGE} bytes")
            body += line


def _login(pop: _Pop, greeting: bytes, options: PopOptions) -> None:
    try:
        if options.apop:
            stamp = _TIMESTAMP.search(greeting)
            if stamp is None:
                raise RejectedError("the server's greeting has no APOP timestamp")
            digest = hashlib.md5(stamp.group() + options.password.encode()).hexdigest()
            pop.command(f"APOP {options.user} {digest}")
        else:
            pop.command(f"USER {options.user}")
            pop.command(f"PASS {options.password}")
    except RejectedError as error:
        raise RejectedError(f"authentication failed: {error.message}") from None


def _number(value: int | None, action: PopAction) -> int:
    if value is None or value < 1:
        raise UsageError(f"pop {action}: needs a message number (1 or more)")
    return value


def _act(
    pop: _Pop,
    result: PopResult,
    action: PopAction,
    number: int | None,
    lines: int,
    save: Path | None,
) -> None:
    if action is PopAction.STAT:
        words = pop.command("STAT").split()
        if len(words) >= 3 and words[1].isdigit() and words[2].isdigit():
            result.stat = (int(words[1]), int(words[2]))
    elif action is PopAction.LIST:
        if number is not None:
            words = pop.command(f"LIST {number}").split()
            rows = [b" ".join(words[1:3])]
        else:
            pop.command("LIST")
            rows = pop.multiline().splitlines()
        for row in rows:
            parts = row.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                result.listing.append((int(parts[0]), int(parts[1])))
    elif action is PopAction.TOP:
        pop.command(f"TOP {_number(number, action)} {max(lines, 0)}")
        result.content = pop.multiline()
    elif action is PopAction.RETR:
        pop.command(f"RETR {_number(number, action)}")
        result.content = pop.multiline()
        if save is not None:
            try:
                save.write_bytes(result.content)
            except OSError as error:
                raise UsageError(f"--save {save}: {error.strerror or error}") from None
            result.saved = save
    else:
        pop.command(f"DELE {_number(number, action)}")


def pop(
    host: str,
    port: int,
    options: PopOptions,
    action: PopAction,
    *,
    number: int | None = None,
    lines: int = 0,
    save: Path | None = None,
    show: ShowLines | None = None,
    watch: Watch | None = None,
) -> PopResult:
    """Log in, do one action, QUIT (which commits a DELE). Never raises for the network."""
    if action in (PopAction.TOP, PopAction.RETR, PopAction.DELE):
        _number(number, action)
    result = PopResult(None)
    conn: Connection | None = None
    from contextlib import nullcontext

    with watch(host, port) if watch is not None else nullcontext():
        try:
            conn = open_connection(
                host, port, Protocol.POP3, Pop3SessionHandler, timeout=options.timeout, show=show
            )
            result.session = conn.session
            if options.tls is TlsMode.IMPLICIT:
                conn.start_tls(host, options.tls_verify, options.keylog)
            client = _Pop(conn)
            try:
                greeting = client.status()
            except RejectedError as error:
                raise RejectedError(f"the server refused the connection: {error.message}") from None
            try:
                if options.tls is TlsMode.STARTTLS:
                    try:
                        client.command("STLS")
                    except RejectedError as error:
                        raise RejectedError(f"STLS refused: {error.message}") from None
                    conn.start_tls(host, options.tls_verify, options.keylog)
                    conn.restart_handler(Pop3SessionHandler)
                _login(client, greeting, options)
                _act(client, result, action, number, lines, save)
            except RejectedError:
                quit_politely(client)
                raise
            quit_politely(client)
        except MailsniffError as error:
            result.error = error
        finally:
            if conn is not None:
                conn.close()
    return result
