"""Blocking SMTP client (RFC 5321, 3207, 4954, 4616, 2195, 2920) that records its own dialogue.

Every byte written and read is fed, in order, to the same sans-IO session handler that
`mailsniff read` uses, so the transcript shown while sending is the reader's transcript.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import ssl
import time
import typing
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum

from mailsniff.errors import MailsniffError, UsageError
from mailsniff.limits import MAX_LINE, MAX_REPLY_LINES
from mailsniff.model import Endpoint, Protocol, Session, TranscriptLine
from mailsniff.protocols.base import Direction
from mailsniff.protocols.pop3 import Pop3AnomalyKind
from mailsniff.protocols.replies import Reply, parse_line
from mailsniff.send import NetworkError, RejectedError
from mailsniff.send.message import dot_stuff
from mailsniff.session.base import SessionHandler
from mailsniff.session.smtp import SmtpSessionHandler

__all__ = [
    "AUTH_MECHANISMS",
    "OWN_TLS_NOTE",
    "Connection",
    "RcptOutcome",
    "Reply",
    "SendResult",
    "SmtpOptions",
    "TlsMode",
    "deliver",
    "open_connection",
]

AUTH_MECHANISMS = ("LOGIN", "PLAIN", "CRAM-MD5")
_RECV = 65536

#: What the reader notes where TLS starts; our own client shows the decrypted dialogue instead.
_TLS_NOTES = frozenset({"TLS started: the rest is encrypted", "TLS from here on: not parsed"})
OWN_TLS_NOTE = "TLS started: shown decrypted (mailsniff's own connection)"
#: The anomaly a handler restarted inside TLS reports (no greeting there: it came before).
_NO_GREETING = Pop3AnomalyKind.NO_GREETING

#: Called with transcript lines as they are recorded (to print them as they happen).
ShowLines = Callable[[list[TranscriptLine]], None]
#: Wraps one connection to host:port (packet capture); None when not capturing.
Watch = Callable[[str, int], AbstractContextManager[None]]


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class Connection:
    """A connected socket whose every write and read goes through a SessionHandler.

    Each step (connect, every read, TLS handshake) is bounded by `timeout` seconds in total.
    """

    def __init__(
        self,
        sock: socket.socket,
        session: Session,
        handler: SessionHandler,
        timeout: float,
        show: ShowLines | None,
    ) -> None:
        self.sock: socket.socket = sock
        self.session = session
        self.handler = handler
        self.timeout = timeout
        self._show = show
        self._shown = 0
        self._buffer = bytearray()
        self._restarted = False
        self.closed = False

    def _flush(self) -> None:
        lines = self.session.transcript
        for i in range(self._shown, len(lines)):
            if lines[i].note in _TLS_NOTES:  # the reader's view; we hold the plaintext
                lines[i] = TranscriptLine(lines[i].ts_ns, lines[i].direction, "", OWN_TLS_NOTE)
        if self._show is not None and len(lines) > self._shown:
            self._show(lines[self._shown :])
        self._shown = len(lines)

    def _record(self, direction: Direction, data: bytes) -> None:
        now = time.time_ns()
        self.session.end_ns = now
        if direction is Direction.CLIENT:
            self.session.client_bytes += len(data)
        else:
            self.session.server_bytes += len(data)
        self.handler.data(now, direction, data)
        self._flush()

    def send(self, data: bytes) -> None:
        self._record(Direction.CLIENT, data)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
        except TimeoutError:
            raise NetworkError(f"timeout after {self.timeout:g}s sending to the server") from None
        except OSError as error:
            raise NetworkError(f"connection lost while sending: {_os_error(error)}") from None

    def read_line(self) -> bytes:
        """One line (with its line end) from the server, within `timeout` seconds."""
        deadline = time.monotonic() + self.timeout
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_LINE:
                raise NetworkError(f"the server sent a line longer than {MAX_LINE} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise NetworkError(f"timeout: no reply from the server within {self.timeout:g}s")
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(_RECV)
            except TimeoutError:
                raise NetworkError(
                    f"timeout: no reply from the server within {self.timeout:g}s"
                ) from None
            except ssl.SSLError as error:
                raise NetworkError(f"TLS error: {error.reason or error}") from None
            except OSError as error:
                raise NetworkError(f"connection lost: {_os_error(error)}") from None
            if not chunk:
                raise NetworkError("the server closed the connection")
            self._record(Direction.SERVER, chunk)
            self._buffer += chunk

    def start_tls(self, host: str, verify: bool, keylog: str | None = None) -> None:
        """TLS handshake on the open socket (implicit TLS, or after STARTTLS/STLS); `keylog`:
        append the session's secrets to this file (NSS key log format, for `read --keylog`)."""
        if self._buffer:
            raise NetworkError("the server sent data before the TLS handshake (injection?)")
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if keylog is not None:
            try:
                context.keylog_filename = keylog
            except OSError as error:
                raise NetworkError(f"--keylog {keylog}: {_os_error(error)}") from None
        try:
            self.sock.settimeout(self.timeout)
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        except TimeoutError:
            raise NetworkError(f"TLS handshake timed out after {self.timeout:g}s") from None
        except ssl.SSLError as error:
            raise NetworkError(f"TLS handshake failed: {error.reason or error}") from None
        except OSError as error:
            raise NetworkError(f"TLS handshake failed: {_os_error(error)}") from None
        self.session.tls = True

    def restart_handler(self, make_handler: Callable[[Session], SessionHandler]) -> None:
        """Go on parsing inside TLS with a fresh handler on the same session.

        For parsers that stop at TLS (POP3 STLS): the dialogue after the handshake is the
        plaintext we write and read, folded into the same session and transcript.
        """
        now = time.time_ns()
        self.handler.close(now)
        self._flush()
        self.handler = make_handler(self.session)
        self._restarted = True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        now = time.time_ns()
        self.session.end_ns = now
        self.session.close_reason = "fin"
        self.handler.close(now)
        self._flush()
        if self._restarted:
            anomalies = self.session.anomalies
            anomalies[:] = [a for a in anomalies if a.kind != _NO_GREETING]


def _os_error(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def open_connection(
    host: str,
    port: int,
    protocol: Protocol,
    make_handler: Callable[[Session], SessionHandler],
    *,
    timeout: float,
    show: ShowLines | None,
) -> Connection:
    """TCP connect to host:port within `timeout`; the session records the endpoints."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise NetworkError(f"{host}:{port}: connection timed out after {timeout:g}s") from None
    except socket.gaierror as error:
        raise NetworkError(f"{host}: cannot resolve host name ({error.strerror})") from None
    except OSError as error:
        raise NetworkError(f"{host}:{port}: {_os_error(error)}") from None
    local, remote = sock.getsockname(), sock.getpeername()
    now = time.time_ns()
    session = Session(
        id=1,
        protocol=protocol,
        client=Endpoint(str(local[0]), int(local[1])),
        server=Endpoint(str(remote[0]), int(remote[1])),
        start_ns=now,
        end_ns=now,
        handshake_seen=True,
        complete=True,
    )
    return Connection(sock, session, make_handler(session), timeout, show)


# --------------------------------------------------------------------------- SMTP


@dataclass(slots=True)
class SmtpOptions:
    helo: str = "localhost"
    tls: TlsMode = TlsMode.NONE
    tls_verify: bool = False
    auth: str | None = None
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    pipelining: bool = True
    #: Append the TLS secrets to this key log file (SSLContext.keylog_filename).
    keylog: str | None = None


@dataclass(slots=True)
class RcptOutcome:
    """What became of one recipient."""

    address: str
    #: accepted, rejected, deferred (4xx), not tried
    status: str = "not tried"
    #: The server reply that decided it (RCPT's, or the end of DATA's), or why not tried.
    reply: str | None = None
    server: str | None = None


@dataclass(slots=True)
class SendResult:
    """One connection's dialogue and what it achieved."""

    session: Session | None
    outcomes: list[RcptOutcome] = field(default_factory=list)
    error: MailsniffError | None = None


class _Smtp:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def reply(self) -> Reply:
        lines: list[str] = []
        code = 0
        for _ in range(MAX_REPLY_LINES):
            raw = self.conn.read_line().rstrip(b"\r\n")
            line = parse_line(raw)
            if line is None:
                text = raw.decode("utf-8", "replace")
                raise NetworkError(f"not an SMTP reply: {text[:80]!r}")
            code = line.code
            lines.append(line.text)
            if not line.more:
                return Reply(code, tuple(lines))
        raise NetworkError(f"SMTP reply longer than {MAX_REPLY_LINES} lines")

    def command(self, line: str | bytes) -> Reply:
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.conn.send(data + b"\r\n")
        return self.reply()


def _ehlo_capabilities(reply: Reply) -> dict[str, list[str]]:
    caps: dict[str, list[str]] = {}
    for line in reply.lines[1:]:
        words = line.upper().replace("=", " ").split()
        if words:
            caps[words[0]] = words[1:]
    return caps


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _authenticate(smtp: _Smtp, caps: dict[str, list[str]], options: SmtpOptions) -> None:
    mechanism = (options.auth or "").upper()
    if mechanism not in AUTH_MECHANISMS:
        raise UsageError(f"--auth: {options.auth!r} is not one of {', '.join(AUTH_MECHANISMS)}")
    if options.user is None or options.password is None:
        raise UsageError("--auth needs --user and a password")
    offered = caps.get("AUTH")
    if offered is None:
        raise RejectedError("the server does not offer AUTH (is STARTTLS needed first?)")
    if mechanism not in offered:
        raise RejectedError(
            f"the server does not offer AUTH {mechanism} (offers: {' '.join(offered)})"
        )
    user, password = options.user.encode(), options.password.encode()
    if mechanism == "PLAIN":
        reply = smtp.command("AUTH PLAIN " + _b64(b"\0" + user + b"\0" + password))
    elif mechanism == "LOGIN":
        reply = smtp.command("AUTH LOGIN")
        if reply.code == 334:
            reply = smtp.command(_b64(user))
        if reply.code == 334:
            reply = smtp.command(_b64(password))
    else:
        reply = smtp.command("AUTH CRAM-MD5")
        if reply.code == 334:
            try:
                challenge = base64.b64decode(reply.lines[0], validate=False)
            except ValueError:
                challenge = b""
            digest = hmac.new(password, challenge, hashlib.md5).hexdigest()
            reply = smtp.command(_b64(user + b" " + digest.encode()))
    if reply.code == 334:  # a challenge we cannot answer: cancel (RFC 4954 4)
        reply = smtp.command("*")
    if reply.code != 235:
        raise RejectedError(f"authentication failed: {reply.text}")


def _transaction(
    smtp: _Smtp,
    caps: dict[str, list[str]],
    options: SmtpOptions,
    envelope_from: str,
    outcomes: list[RcptOutcome],
    message: bytes,
) -> None:
    mail = f"MAIL FROM:<{envelope_from}>"
    rcpts = [f"RCPT TO:<{o.address}>" for o in outcomes]
    if options.pipelining and "PIPELINING" in caps:
        # RFC 2920 3.1: MAIL, RCPT and DATA in one group; replies read in order.
        smtp.conn.send(("\r\n".join([mail, *rcpts, "DATA"]) + "\r\n").encode("utf-8"))
        mail_reply = smtp.reply()
        for o in outcomes:
            _rcpt_outcome(o, smtp.reply())
        data_reply = smtp.reply()
    else:
        mail_reply = smtp.command(mail)
        if not mail_reply.positive:
            _sender_rejected(outcomes, mail_reply)
            raise RejectedError(f"sender <{envelope_from}> rejected: {mail_reply.text}")
        for o, line in zip(outcomes, rcpts, strict=True):
            _rcpt_outcome(o, smtp.command(line))
        if not any(o.status == "accepted" for o in outcomes):
            raise RejectedError("every recipient was rejected")
        data_reply = smtp.command("DATA")
    if not mail_reply.positive:
        _sender_rejected(outcomes, mail_reply)
    accepted = mail_reply.positive and any(o.status == "accepted" for o in outcomes)
    if data_reply.code == 354 and not accepted:
        smtp.command(".")  # RFC 2920 3.1: a DATA accepted with no recipient is ended at once
    if not mail_reply.positive:
        raise RejectedError(f"sender <{envelope_from}> rejected: {mail_reply.text}")
    if not accepted:
        raise RejectedError("every recipient was rejected")
    if data_reply.code != 354:
        _data_rejected(outcomes, data_reply)
        raise RejectedError(f"DATA refused: {data_reply.text}")
    smtp.conn.send(dot_stuff(message))
    final = smtp.reply()
    if not final.positive:
        _data_rejected(outcomes, final)
        raise RejectedError(f"message refused: {final.text}")
    for o in outcomes:
        if o.status == "accepted":
            o.reply = final.text


def _rcpt_outcome(outcome: RcptOutcome, reply: Reply) -> None:
    outcome.reply = reply.text
    if reply.positive:
        outcome.status = "accepted"
    else:
        outcome.status = reply.outcome


def _sender_rejected(outcomes: list[RcptOutcome], reply: Reply) -> None:
    for o in outcomes:
        o.status = reply.outcome
        o.reply = f"sender rejected: {reply.text}"


def _data_rejected(outcomes: list[RcptOutcome], reply: Reply) -> None:
    for o in outcomes:
        if o.status == "accepted":
            o.status = reply.outcome
            o.reply = reply.text


def deliver(
    host: str,
    port: int,
    envelope_from: str,
    recipients: list[str],
    message: bytes,
    options: SmtpOptions,
    *,
    show: ShowLines | None = None,
    watch: Watch | None = None,
) -> SendResult:
    """One SMTP connection that sends `message` to `recipients`; never raises for the network.

    Returns the recorded session, one outcome per recipient, and the error that ended the
    dialogue early (None when the server took the message for every accepted recipient).
    """
    result = SendResult(None, [RcptOutcome(r, server=f"{host}:{port}") for r in recipients])
    conn: Connection | None = None
    context = watch(host, port) if watch is not None else nullcontext()
    with context:
        try:
            conn = open_connection(
                host,
                port,
                Protocol.SMTP,
                SmtpSessionHandler,
                timeout=options.timeout,
                show=show,
            )
            result.session = conn.session
            if options.tls is TlsMode.IMPLICIT:
                conn.start_tls(host, options.tls_verify, options.keylog)
            smtp = _Smtp(conn)
            try:
                _dialogue(smtp, host, options, envelope_from, result.outcomes, message)
            except RejectedError:
                quit_politely(smtp)
                raise
            quit_politely(smtp)
        except MailsniffError as error:
            result.error = error
            for o in result.outcomes:
                if o.status == "not tried":
                    o.reply = error.message
        finally:
            if conn is not None:
                conn.close()
    return result


def _dialogue(
    smtp: _Smtp,
    host: str,
    options: SmtpOptions,
    envelope_from: str,
    outcomes: list[RcptOutcome],
    message: bytes,
) -> None:
    greeting = smtp.reply()
    if greeting.code != 220:
        raise RejectedError(f"the server refused the connection: {greeting.text}")
    caps = _hello(smtp, options)
    if options.tls is TlsMode.STARTTLS:
        if "STARTTLS" not in caps:
            raise RejectedError("the server does not offer STARTTLS")
        reply = smtp.command("STARTTLS")
        if reply.code != 220:
            raise RejectedError(f"STARTTLS refused: {reply.text}")
        smtp.conn.start_tls(host, options.tls_verify, options.keylog)
        caps = _hello(smtp, options)
    if options.auth is not None:
        _authenticate(smtp, caps, options)
    _transaction(smtp, caps, options, envelope_from, outcomes, message)


def _hello(smtp: _Smtp, options: SmtpOptions) -> dict[str, list[str]]:
    reply = smtp.command(f"EHLO {options.helo}")
    if reply.code == 250:
        return _ehlo_capabilities(reply)
    reply = smtp.command(f"HELO {options.helo}")  # RFC 5321 3.2: fall back to HELO
    if reply.code != 250:
        raise RejectedError(f"HELO refused: {reply.text}")
    return {}


#: Seconds at most waited for the reply to QUIT (the outcome is already known).
QUIT_TIMEOUT = 2.0


class _Quittable(typing.Protocol):
    conn: Connection

    def command(self, line: str) -> object: ...


def quit_politely(client: _Quittable) -> None:
    """QUIT (SMTP, or POP3 where it commits DELE), waiting at most QUIT_TIMEOUT for the reply;
    a broken or silent connection at this point changes nothing."""
    conn = client.conn
    saved, conn.timeout = conn.timeout, min(conn.timeout, QUIT_TIMEOUT)
    try:
        client.command("QUIT")
    except MailsniffError:
        pass
    finally:
        conn.timeout = saved
