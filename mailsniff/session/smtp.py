"""Fold SMTP parser events into a Session record (RFC 5321, 3030, 3207, 4954, 4616, 2195)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mypy_extensions import mypyc_attr

from mailsniff.limits import (
    MAX_AWAITED,
    MAX_LINE,
    MAX_TRANSCRIPT_DATA_LINES,
    MAX_TRANSCRIPT_LINES,
)
from mailsniff.mail.mime import MessageAccumulator
from mailsniff.model import (
    AuthAttempt,
    Exchange,
    RcptAttempt,
    Session,
    Transaction,
    TranscriptLine,
)
from mailsniff.protocols import smtp as grammar
from mailsniff.protocols.base import (
    CLIENT,
    SERVER,
    Anomaly,
    Direction,
    SaslStep,
    StreamGap,
    TlsStarted,
    to_text,
)
from mailsniff.protocols.ntlm import describe_ntlm
from mailsniff.protocols.replies import is_negative, is_positive
from mailsniff.protocols.sasl import decode_cram_md5, decode_plain, decode_xoauth2
from mailsniff.protocols.smtp import (
    Command,
    Greeting,
    MessageData,
    MessageEnd,
    MessageGap,
    Params,
    Reply,
    SmtpEvent,
    SmtpParser,
)
from mailsniff.session.auth import fold_ntlm, fold_ntlm_challenge
from mailsniff.session.base import AnomalyLog, ParserDriven, TranscriptRecorder
from mailsniff.session.entry import ProtocolEntry
from mailsniff.sink import MessageSink, OpenSink

__all__ = ["SmtpSessionAnomalyKind", "SmtpSessionHandler"]


class SmtpSessionAnomalyKind(StrEnum):
    """The anomalies the SMTP session builder notes itself: commands out of order, as the
    envelope they belong to shows (the parser's own are SmtpAnomalyKind)."""

    RCPT_WITHOUT_MAIL = "rcpt-without-mail"  # RCPT TO with no MAIL FROM before it
    DATA_WITHOUT_MAIL = "data-without-mail"  # DATA with no MAIL FROM before it
    BDAT_WITHOUT_MAIL = "bdat-without-mail"  # BDAT with no MAIL FROM before it
    MESSAGE_WITHOUT_MAIL = "message-without-mail"  # message content whose envelope was not seen


_WITHOUT_MAIL = {
    "DATA": SmtpSessionAnomalyKind.DATA_WITHOUT_MAIL,
    "BDAT": SmtpSessionAnomalyKind.BDAT_WITHOUT_MAIL,
}


# `__init__` written out: the compiled build compiles it (see protocols/base.py).
@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see park.py
@dataclass(slots=True, init=False)
class _Awaited:
    """What a command's reply will be written into."""

    verb: str
    exchange: int | None = None  # index in session.exchanges
    txn: Transaction | None = None
    rcpt: RcptAttempt | None = None
    answered: bool = False
    prior: Transaction | None = None  # MAIL: the transaction still open before it

    def __init__(
        self,
        verb: str,
        exchange: int | None = None,
        txn: Transaction | None = None,
        rcpt: RcptAttempt | None = None,
        answered: bool = False,
        prior: Transaction | None = None,
    ) -> None:
        self.verb = verb
        self.exchange = exchange
        self.txn = txn
        self.rcpt = rcpt
        self.answered = answered
        self.prior = prior


@dataclass(slots=True)
class _Auth:
    attempt: AuthAttempt
    responses: list[bytes] = field(default_factory=list)
    exchange: int | None = None  # the AUTH command's row, answered by the final reply


@dataclass(slots=True)
class _Body:
    """One message in transfer: the accumulator and the transcript's view of its lines."""

    txn: Transaction
    acc: MessageAccumulator = field(default_factory=MessageAccumulator)
    sink: MessageSink | None = None  # the export's copy of the bytes, when one was asked for
    line: bytearray = field(default_factory=bytearray)
    lines_shown: int = 0
    lines_hidden: int = 0
    ts_ns: int = 0


def _params(params: Params) -> dict[str, str | None]:
    return {k: v for k, v in params}


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see session/base.py
class SmtpSessionHandler(ParserDriven[SmtpEvent]):
    """`SessionHandler` for SMTP: drives an `SmtpParser` and folds its events into `session`.

    Fills banner, helo, capabilities, tls, auth, transactions (with their messages),
    exchanges, transcript and anomalies. Analysis (bcc, header_only, findings) comes later.
    `open_sink`, when given, is asked for a sink at the start of each message (export).
    """

    __slots__ = (
        "session",
        "_open_sink",
        "_parser",
        "_transcript",
        "_awaited",
        "_txn",
        "_auth",
        "_body",
        "_anomalies",
    )

    def __init__(self, session: Session, open_sink: OpenSink | None = None) -> None:
        self.session = session
        self._open_sink = open_sink
        self._parser = SmtpParser()
        self._transcript = TranscriptRecorder(session)
        self._awaited: dict[int, _Awaited] = {}
        self._txn: Transaction | None = None
        self._auth: _Auth | None = None
        self._body: _Body | None = None
        self._anomalies = AnomalyLog(session)

    def close(self, ts_ns: int) -> None:
        super().close(ts_ns)
        if self._body is not None:  # the parser always ends a message; belt and braces
            self._finish_body(ts_ns, complete=False)
        self._anomalies.close()

    # ------------------------------------------------------------------ events

    def _fold(self, events: list[SmtpEvent]) -> None:
        for ev in events:
            match ev:
                case Greeting():
                    self._on_greeting(ev)
                case Command():
                    self._on_command(ev)
                case Reply():
                    self._on_reply(ev)
                case SaslStep() if ev.direction is SERVER:
                    self._on_challenge(ev)
                case SaslStep():
                    self._on_response(ev)
                case MessageData():
                    self._on_message_data(ev)
                case MessageGap():
                    self._body_for(ev.ts_ns).acc.note_gap(ev.length)
                case MessageEnd():
                    self._on_message_end(ev)
                case TlsStarted():
                    self.session.tls = True
                    self._line(ev.ts_ns, SERVER, "", "TLS started: the rest is encrypted")
                case Anomaly():
                    self._anomalies.event(ev, with_raw=False)
                case StreamGap():
                    what = "unknown number of" if ev.length == 0 else str(ev.length)
                    self._line(ev.ts_ns, ev.direction, "", f"gap: {what} bytes not captured")

    def _line(self, ts: int, direction: Direction, text: str, note: str | None = None) -> None:
        self._transcript.add(ts, direction, text, note)

    def _wire_lines(self, ts: int, direction: Direction, raw: bytes, note: str | None) -> None:
        for i, piece in enumerate(raw.split(b"\n")):
            if not piece and i:
                continue
            self._line(ts, direction, to_text(piece.removesuffix(b"\r")), note if i == 0 else None)

    def _on_greeting(self, ev: Greeting) -> None:
        self._wire_lines(ev.ts_ns, ev.direction, ev.raw, None)
        if self.session.banner is None:
            first = ev.raw.split(b"\n", 1)[0].removesuffix(b"\r")
            self.session.banner = to_text(first)

    # ------------------------------------------------------------------ commands

    def _await(self, seq: int, awaited: _Awaited) -> None:
        if len(self._awaited) >= MAX_AWAITED:
            del self._awaited[next(iter(self._awaited))]
        self._awaited[seq] = awaited

    def _on_command(self, ev: Command) -> None:
        s = self.session
        self._wire_lines(ev.ts_ns, ev.direction, ev.raw, None)
        awaited = _Awaited(ev.verb)
        if len(s.exchanges) < MAX_TRANSCRIPT_LINES:
            awaited.exchange = len(s.exchanges)
            s.exchanges.append(Exchange(ev.ts_ns, ev.verb, ev.argument, None))
        match ev.verb:
            case "HELO" | "EHLO" | "LHLO":
                # RFC 5321 4.1.4: a new EHLO/HELO resets any transaction in progress.
                s.helo = ev.argument
                self._txn = None
            case "RSET":
                self._txn = None  # RFC 5321 4.1.1.5
            case "MAIL":
                txn = Transaction(
                    mail_from=ev.address or "",
                    mail_from_params=_params(ev.params),
                    ts_ns=ev.ts_ns,
                )
                s.transactions.append(txn)
                awaited.prior = self._txn
                self._txn = awaited.txn = txn
            case "RCPT":
                if self._txn is None:
                    self._anomalies.note(
                        SmtpSessionAnomalyKind.RCPT_WITHOUT_MAIL, f"RCPT {ev.argument}"[:101]
                    )
                else:
                    rcpt = RcptAttempt(
                        address=ev.address if ev.address is not None else ev.argument,
                        params=_params(ev.params),
                        ts_ns=ev.ts_ns,
                    )
                    self._txn.rcpts.append(rcpt)
                    awaited.txn, awaited.rcpt = self._txn, rcpt
            case "DATA" | "BDAT":
                if self._txn is None:
                    self._anomalies.note(_WITHOUT_MAIL[ev.verb])
                else:
                    self._txn.body_command = ev.verb
                    awaited.txn = self._txn
            case "AUTH":
                mechanism = (ev.argument.split() or [""])[0].upper()
                attempt = AuthAttempt(mechanism=mechanism, ts_ns=ev.ts_ns)
                s.auth.append(attempt)
                self._auth = _Auth(attempt, exchange=awaited.exchange)
            case _:
                pass
        self._await(ev.seq, awaited)

    # ------------------------------------------------------------------ replies

    def _on_reply(self, ev: Reply) -> None:
        self._wire_lines(ev.ts_ns, ev.direction, ev.raw, None)
        if ev.seq is None:
            return
        awaited = self._awaited.get(ev.seq)
        if awaited is None:
            return
        # The exchange table shows the first line; records keep the final line, which carries
        # the verdict and the queue id in multi-line replies (Exim: "250- 4404 byte chunk" /
        # "250 OK id=..."), as Zeek's last_reply does.
        line = ev.last_line
        if awaited.exchange is not None and not awaited.answered:
            old = self.session.exchanges[awaited.exchange]
            self.session.exchanges[awaited.exchange] = Exchange(
                old.ts_ns, old.command, old.argument, ev.first_line, len(ev.lines)
            )
        awaited.answered = True
        if ev.code != 354:  # 354 is DATA's go-ahead; every other reply is the last for its seq
            del self._awaited[ev.seq]
        match awaited.verb:
            case "EHLO" | "LHLO" if is_positive(ev.code):
                # RFC 5321 4.1.1.1: the first line greets, each further line is a keyword.
                self.session.capabilities = [t for t in ev.lines[1:] if t]
            case "MAIL" if awaited.txn is not None:
                awaited.txn.mail_from_reply = line
                if is_negative(ev.code) and self._txn is awaited.txn:
                    # A refused MAIL FROM opens no transaction; one already open stays open
                    # (Exim's "503 sender already given").
                    self._txn = awaited.prior
            case "RCPT" if awaited.rcpt is not None:
                awaited.rcpt.reply = line
            case "DATA" if awaited.txn is not None:
                if ev.ends_message or is_negative(ev.code):
                    awaited.txn.data_reply = line
            case "BDAT" if awaited.txn is not None:
                if ev.ends_message or is_negative(ev.code):
                    awaited.txn.data_reply = line
            case "AUTH":
                self._auth_result(ev)
            case _:
                pass

    # ------------------------------------------------------------------ AUTH (RFC 4954)

    def _auth_result(self, ev: Reply) -> None:
        if self._auth is None:
            return
        attempt = self._auth.attempt
        attempt.reply = ev.last_line
        row = self._auth.exchange
        if row is not None and self.session.exchanges[row].reply is None:
            old = self.session.exchanges[row]
            self.session.exchanges[row] = Exchange(
                old.ts_ns, old.command, old.argument, ev.first_line, len(ev.lines)
            )
        if is_positive(ev.code):
            attempt.success = True
        elif is_negative(ev.code):
            attempt.success = False
        self._auth = None

    def _on_challenge(self, ev: SaslStep) -> None:
        note = ev.text if ev.base64 else None
        attempt = self._auth.attempt if self._auth is not None else None
        if attempt is not None and attempt.mechanism == "NTLM" and ev.base64:
            note = describe_ntlm(ev.data) or note
            fold_ntlm_challenge(attempt, ev.data)
        self._wire_lines(ev.ts_ns, ev.direction, ev.raw, note)
        if attempt is not None and attempt.mechanism == "CRAM-MD5":
            attempt.challenge = ev.text
        if ev.seq is not None and ev.seq in self._awaited:
            self._awaited[ev.seq].answered = True

    def _on_response(self, ev: SaslStep) -> None:
        if not ev.initial:  # the initial response was shown with its AUTH command line
            self._wire_lines(ev.ts_ns, ev.direction, ev.raw, self._response_note(ev))
        else:
            self._annotate_initial(ev)
        if ev.seq is not None:
            self._await(ev.seq, _Awaited("AUTH"))
        if self._auth is None:
            attempt = AuthAttempt(mechanism=ev.mechanism, ts_ns=ev.ts_ns)
            self.session.auth.append(attempt)
            self._auth = _Auth(attempt)
        auth = self._auth
        attempt = auth.attempt
        if ev.cancelled:
            attempt.cancelled = True
            return
        if not ev.base64:
            attempt.not_base64 = True
        auth.responses.append(ev.data)
        self._decode(auth, ev.data, ev.raw.strip())

    def _annotate_initial(self, ev: SaslStep) -> None:
        """Put the decoded initial response on the transcript line of its AUTH command."""
        s = self.session
        if not s.transcript or s.transcript[-1].direction is not CLIENT:
            return
        last = s.transcript[-1]
        if last.text.upper().startswith("AUTH") and last.note is None:
            note = self._response_note(ev)
            s.transcript[-1] = TranscriptLine(last.ts_ns, last.direction, last.text, note)

    @staticmethod
    def _response_note(ev: SaslStep) -> str:
        if ev.cancelled:
            return "cancel"
        if not ev.base64:
            return "not base64"
        if ev.mechanism == "NTLM":
            return describe_ntlm(ev.data) or ev.text
        return ev.text

    @staticmethod
    def _decode(auth: _Auth, data: bytes, wire: bytes) -> None:
        """Fold one decoded client response into the attempt; `wire` is the line as sent."""
        attempt = auth.attempt
        n = len(auth.responses)
        secret: bytes | None = None
        match attempt.mechanism:
            case "LOGIN":
                # draft-murchison-sasl-login: the username, then the password.
                text = to_text(data)
                if n == 1:
                    attempt.username = text
                elif n == 2:
                    attempt.password, secret = text, data
            case "PLAIN":
                creds = decode_plain(data)  # RFC 4616 2 (tolerant: never the password as user)
                attempt.username = creds.authcid
                attempt.password, secret = creds.password, creds.secret
                if creds.authzid and creds.authzid != creds.authcid:
                    attempt.authzid = creds.authzid
            case "CRAM-MD5":
                cram = decode_cram_md5(data)  # RFC 2195 2
                if cram is None:
                    attempt.response, secret = to_text(data), data
                else:
                    attempt.username, attempt.response, secret = (
                        cram.username,
                        cram.digest,
                        cram.secret,
                    )
            case "XOAUTH2":
                bearer = decode_xoauth2(data)
                if bearer.user is not None or bearer.token is not None:
                    attempt.username, attempt.password = bearer.user, bearer.token
                    secret = bearer.secret or data
            case "NTLM":
                fold_ntlm(attempt, data, wire)
            case _:
                if n == 1:
                    attempt.username = to_text(data)
        if secret is not None:
            attempt.secrets += [s for s in (secret, wire) if s]

    # ------------------------------------------------------------------ message content

    def _body_for(self, ts: int) -> _Body:
        if self._body is None:
            txn = self._txn
            if txn is None:
                # Content whose MAIL FROM was not captured (capture began later, or a gap).
                self._anomalies.note(
                    SmtpSessionAnomalyKind.MESSAGE_WITHOUT_MAIL, "envelope not captured"
                )
                txn = Transaction(mail_from="", ts_ns=ts)
                self.session.transactions.append(txn)
                self._txn = txn
            sink = self._open_sink(self.session) if self._open_sink is not None else None
            self._body = _Body(txn, acc=MessageAccumulator(sink=sink), sink=sink, ts_ns=ts)
        return self._body

    def _on_message_data(self, ev: MessageData) -> None:
        body = self._body_for(ev.ts_ns)
        body.acc.feed(ev.data)
        self._transcribe_content(body, ev.ts_ns, ev.raw)

    def _transcribe_content(self, body: _Body, ts: int, raw: bytes) -> None:
        if not self._transcript.enabled:
            return  # nobody asked for the transcript: no per-line work at all
        if body.txn.body_command == "BDAT":
            return  # chunks are not lines; the summary line counts them
        if body.lines_shown >= MAX_TRANSCRIPT_DATA_LINES:
            # Past the limit only the count matters: no per-line work on big messages.
            newlines = raw.count(b"\n")
            if newlines:
                body.lines_hidden += newlines
                body.line[:] = raw[raw.rfind(b"\n") + 1 :][:MAX_LINE]
            elif len(body.line) < MAX_LINE:
                body.line += raw[: MAX_LINE - len(body.line)]
            return
        start = 0
        while True:
            i = raw.find(b"\n", start)
            if i < 0:
                room = MAX_LINE - len(body.line)
                if room > 0:
                    body.line += raw[start : start + room]
                return
            room = MAX_LINE - len(body.line)
            if room > 0:
                body.line += raw[start : min(i, start + room)]
            start = i + 1
            self._content_line(body, ts)

    def _content_line(self, body: _Body, ts: int) -> None:
        if body.lines_shown < MAX_TRANSCRIPT_DATA_LINES:
            text = to_text(bytes(body.line).removesuffix(b"\r"))
            self._line(ts, CLIENT, text)
            body.lines_shown += 1
        else:
            body.lines_hidden += 1
        body.line.clear()

    def _on_message_end(self, ev: MessageEnd) -> None:
        if self._body is None and ev.size == 0 and not ev.complete:
            return  # nothing of the message was seen
        body = self._body_for(ev.ts_ns)
        if body.line:
            self._content_line(body, ev.ts_ns)
        if body.lines_hidden:
            self._line(
                ev.ts_ns,
                CLIENT,
                f"[{body.lines_hidden} more message lines]",
                "message lines not shown",
            )
        if ev.body_command == "BDAT":
            self._line(ev.ts_ns, CLIENT, f"[{ev.size} bytes of BDAT content]")
        if ev.raw:
            self._wire_lines(ev.ts_ns, ev.direction, ev.raw, "end of message")
        body.txn.body_command = body.txn.body_command or ev.body_command
        awaited = _Awaited(ev.body_command, txn=body.txn)
        if ev.body_command == "DATA":
            self._await(ev.seq, awaited)
        else:
            # BDAT: the LAST command's own reply ends the message (already awaited).
            prior = self._awaited.get(ev.seq)
            if prior is not None:
                prior.txn = body.txn
        self._finish_body(ev.ts_ns, ev.complete)

    def _finish_body(self, ts: int, complete: bool) -> None:
        body, self._body = self._body, None
        if body is None:
            return
        body.txn.message = body.acc.finish()
        if body.sink is not None:
            body.sink.end(body.txn.message, body.txn)
        if complete and self._txn is body.txn:
            # RFC 5321 4.1.1.4: the end of data ends the transaction. An abandoned message
            # (BDAT chunks then DATA) leaves it open for the message that replaces it.
            self._txn = None


#: SMTP's registry entry (RFC 5321; submission 587 RFC 6409; implicit TLS 465 RFC 8314).
ENTRY: ProtocolEntry = ProtocolEntry(
    name="smtp",
    ports=(25, 587, 2525),
    implicit_tls_ports=(465,),
    greeting=grammar.is_greeting,
    maybe_greeting=grammar.may_be_greeting,
    hello=grammar.is_hello,
    handler=SmtpSessionHandler,
    record=Transaction,
    description="mail submission and relay",
)
