"""Folds a POP3 dialogue (RFC 1939, 2449, 5034, 2595) into a Session record."""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from mailsniff.limits import (
    MAX_CAPABILITIES,
    MAX_TRANSCRIPT_DATA_LINES,
    MAX_TRANSCRIPT_LINES,
)
from mailsniff.mail.mime import MessageAccumulator
from mailsniff.model import AnomalyKind, AuthAttempt, Exchange, RetrievedMessage, Session
from mailsniff.protocols import pop3 as grammar
from mailsniff.protocols.base import (
    CLIENT,
    SERVER,
    Anomaly,
    SaslStep,
    StreamGap,
    TlsStarted,
    to_text,
)
from mailsniff.protocols.ntlm import describe_ntlm
from mailsniff.protocols.pop3 import (
    Command,
    Greeting,
    MultilineData,
    Pop3AnomalyKind,
    Pop3Event,
    Pop3Parser,
    Response,
    ResponseEnd,
)
from mailsniff.protocols.sasl import decode_cram_md5, decode_plain, decode_xoauth2
from mailsniff.session.auth import fold_ntlm, fold_ntlm_challenge
from mailsniff.session.base import (
    AnomalyLog,
    ParserDriven,
    TranscriptRecorder,
    restore_state,
    saved_state,
)
from mailsniff.session.entry import ProtocolEntry
from mailsniff.sink import MessageSink, OpenSink

__all__ = ["Pop3SessionHandler", "decode_oauthbearer"]


#: Anomalies whose line is shown nowhere else, so the transcript carries it with the anomaly.
_SHOWN_ANOMALIES: Final = frozenset(
    {
        Pop3AnomalyKind.UNKNOWN_SERVER_LINE,
        Pop3AnomalyKind.BAD_GREETING,
        Pop3AnomalyKind.EMPTY_COMMAND,
        Pop3AnomalyKind.RESYNC,
    }
)


def _replied(exchange: Exchange, reply: str | None, lines: int) -> Exchange:
    """`exchange` with its reply (built: dataclasses.replace looks the fields up every call,
    and every POP3 command's exchange gets its reply this way)."""
    return Exchange(exchange.ts_ns, exchange.command, exchange.argument, reply, lines)


def decode_oauthbearer(data: bytes) -> tuple[str | None, str | None]:
    """RFC 7628 3.1 `n,a=USER,^Aauth=Bearer TOKEN^A^A`: (user, token); never raises."""
    user: str | None = None
    token: str | None = None
    header, _, rest = data.partition(b"\x01")
    for field in header.split(b","):
        if field.startswith(b"a="):
            user = to_text(field[2:]).replace("=2C", ",").replace("=3D", "=")
    for part in rest.split(b"\x01"):
        key, sep, value = part.partition(b"=")
        if sep and key == b"auth":
            text = to_text(value)
            scheme, _, bearer = text.partition(" ")
            token = bearer if scheme.lower() == "bearer" and bearer else text
    return user, token


def _command_text(command: Command) -> str:
    return f"{command.verb} {command.argument}" if command.argument else command.verb


def _number(command: Command) -> int | None:
    if command.args and command.args[0].isascii() and command.args[0].isdigit():
        return int(command.args[0])
    return None


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see session/base.py
class Pop3SessionHandler(ParserDriven[Pop3Event]):
    """Drives a Pop3Parser and folds its events into `session` (no findings: analysis does that).

    Args:
        session: the record to fill; the caller owns endpoints, times, gaps and close reason.
        open_sink: asked for a sink at the start of each RETR/TOP body (export), if given.
    """

    def __init__(self, session: Session, open_sink: OpenSink | None = None) -> None:
        self.session = session
        self._open_sink = open_sink
        self._sink: MessageSink | None = None  # the open body's export sink
        self._parser = Pop3Parser()
        self._transcript = TranscriptRecorder(session)
        self._challenge: str | None = None  # APOP timestamp from the greeting
        # id(command) -> (command, index in session.exchanges); the command is kept so that
        # its id stays unique while it waits.
        self._exchange_at: dict[int, tuple[Command, int]] = {}
        self._exchanges_dropped = 0
        # id(command) -> (command, attempt) for USER / PASS / APOP / AUTH awaiting an answer
        self._auth_for: dict[int, tuple[Command, AuthAttempt]] = {}
        self._user_attempt: AuthAttempt | None = None  # USER sent, PASS not yet
        self._sasl_attempt: AuthAttempt | None = None
        self._sasl_challenge = ""  # the last decoded `+ ` challenge
        self._last_command: Command | None = None
        # the open multi-line body
        self._body_index: int | None = None
        self._body_shown = 0  # body lines put in the transcript (the rest are counted at the end)
        self._body_mid_line = False  # the last body bytes seen did not end their line
        self._message: MessageAccumulator | None = None
        self._message_partial = False
        self._capabilities: list[str] | None = None
        self._anomalies = AnomalyLog(session)

    def __getstate__(self) -> dict[str, Any]:
        return saved_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Read back after parking (mailsniff.park): the commands waiting for an answer are
        new objects with new ids, so the maps keyed by their ids are keyed again."""
        restore_state(self, state)
        self._exchange_at = {id(entry[0]): entry for entry in self._exchange_at.values()}
        self._auth_for = {id(entry[0]): entry for entry in self._auth_for.values()}

    def close(self, ts_ns: int) -> None:
        super().close(ts_ns)
        if self._sink is not None:  # the parser ends every body on close; belt and braces
            self._sink.abandon()
            self._sink = None
        if self._exchanges_dropped:
            detail = f"exchanges: {self._exchanges_dropped} commands beyond the limit"
            self._anomalies.note(AnomalyKind.NOT_KEPT, detail)
            self._exchanges_dropped = 0
        self._anomalies.close()

    # ----------------------------------------------------------------------------------------
    # Events
    # ----------------------------------------------------------------------------------------

    def _fold(self, events: list[Pop3Event]) -> None:
        for event in events:
            match event:
                case MultilineData():  # by far the most frequent
                    self._on_data(event)
                case Greeting():
                    self._on_greeting(event)
                case Command():
                    self._on_command(event)
                case Response():
                    self._on_response(event)
                case ResponseEnd():
                    self._on_end(event)
                case SaslStep():
                    self._on_sasl(event)
                case TlsStarted():
                    self.session.tls = True
                    self._transcript.add(
                        event.ts_ns, event.direction, "", "TLS from here on: not parsed"
                    )
                case StreamGap():
                    self._on_gap(event)
                case Anomaly():
                    self._on_anomaly(event)

    # RFC 1939 4: the greeting; RFC 1939 7: its `<...>` timestamp is the APOP challenge.
    def _on_greeting(self, event: Greeting) -> None:
        self.session.banner = to_text(event.raw)
        self._challenge = event.challenge
        self._transcript.add(event.ts_ns, event.direction, to_text(event.raw))

    def _on_command(self, event: Command) -> None:
        s = self.session
        self._last_command = event
        initial_response = event.verb == "AUTH" and len(event.args) > 1
        if not initial_response:  # shown with its decoded note by _on_sasl
            self._transcript.add(event.ts_ns, event.direction, to_text(event.raw))
        if len(s.exchanges) < MAX_TRANSCRIPT_LINES:
            s.exchanges.append(
                Exchange(event.ts_ns, event.verb, event.argument, None, reply_lines=0)
            )
            self._exchange_at[id(event)] = (event, len(s.exchanges) - 1)
        else:
            self._exchanges_dropped += 1
        attempt: AuthAttempt | None = None
        match event.verb:
            case "USER":  # RFC 1939 7
                attempt = AuthAttempt("USER", username=event.argument.strip(), ts_ns=event.ts_ns)
                s.auth.append(attempt)
                self._user_attempt = attempt
            case "PASS":  # RFC 1939 7: the password is everything after "PASS "
                attempt = self._user_attempt
                if attempt is None or attempt.password is not None:
                    attempt = AuthAttempt("USER", ts_ns=event.ts_ns)
                    s.auth.append(attempt)
                attempt.password = event.argument
                attempt.secrets.append(event.raw.partition(b" ")[2])
                self._user_attempt = None
            case "APOP":  # RFC 1939 7: APOP name digest
                attempt = AuthAttempt(
                    "APOP",
                    username=event.args[0] if event.args else None,
                    challenge=self._challenge,
                    response=event.args[1] if len(event.args) > 1 else None,
                    ts_ns=event.ts_ns,
                )
                fields = event.raw.split(None, 2)
                if len(fields) > 2:  # the digest as sent, whatever its bytes
                    attempt.secrets.append(fields[2])
                s.auth.append(attempt)
            case "AUTH" if event.args:  # RFC 5034 4
                attempt = AuthAttempt(event.args[0].upper(), ts_ns=event.ts_ns)
                s.auth.append(attempt)
                self._sasl_attempt = attempt
                self._sasl_challenge = ""
        if attempt is not None:
            self._auth_for[id(event)] = (event, attempt)
        # Both maps only hold commands still waiting; a server that never answers (one-sided
        # capture) must not make them grow without bound.
        for waiting in (self._exchange_at, self._auth_for):
            if len(waiting) > MAX_TRANSCRIPT_LINES:
                del waiting[next(iter(waiting))]

    def _on_response(self, event: Response) -> None:
        s = self.session
        line = to_text(event.raw)
        self._transcript.add(event.ts_ns, event.direction, line)
        command = event.command
        if command is None:
            return
        entry = self._exchange_at.pop(id(command), None)
        if entry is not None:
            index = entry[1]
            s.exchanges[index] = _replied(s.exchanges[index], line, 1)
        found = self._auth_for.pop(id(command), None)
        if found is not None:
            attempt = found[1]
            if command.verb == "USER":
                if not event.ok:  # RFC 1939 7: -ERR to USER ends the attempt
                    attempt.success, attempt.reply = False, line
                    self._user_attempt = None
            else:
                attempt.success, attempt.reply = event.ok, line
                if attempt is self._sasl_attempt:
                    self._sasl_attempt = None
        if event.ok:
            match command.verb:
                case "STAT":  # RFC 1939 5: +OK nn mm
                    parts = event.text.split()
                    if len(parts) >= 2 and all(p.isascii() and p.isdigit() for p in parts[:2]):
                        s.mailbox_stats.append((int(parts[0]), int(parts[1])))
                case "DELE":  # RFC 1939 5
                    number = _number(command)
                    if number is not None:
                        s.deleted.append(number)
                case "RETR" | "TOP" if event.multiline:  # RFC 1939 5, 7
                    if self._sink is not None:
                        self._sink.abandon()
                    opened = self._open_sink(s) if self._open_sink is not None else None
                    self._sink = opened
                    self._message = MessageAccumulator(sink=opened)
                    self._message_partial = command.verb == "TOP"
                case "CAPA":  # RFC 2449 5
                    self._capabilities = []
        if event.multiline:
            self._body_index = entry[1] if entry is not None else None
            self._body_shown = 0
            self._body_mid_line = False

    def _on_data(self, event: MultilineData) -> None:
        if self._message is not None:
            self._message.feed(event.data)
            if event.dropped:
                self._message.note_gap(event.dropped)
                self._message_partial = True
        if self._capabilities is not None and len(self._capabilities) < MAX_CAPABILITIES:
            self._capabilities.append(to_text(event.data).rstrip("\r\n"))
        if self._body_shown < MAX_TRANSCRIPT_DATA_LINES and self._transcript.enabled:
            self._show_body_lines(event)

    def _show_body_lines(self, event: MultilineData) -> None:
        """Put the lines that start in `event` in the transcript, up to the per-body cap.

        A listing line, or a body line next to a gap, is one event whose `raw` has no line
        ending; a RETR/TOP body comes as runs of lines with their endings, and a line longer
        than MAX_LINE in pieces (shown once, as its first piece). Lines are shown as sent,
        still dot-stuffed.
        """
        raw = event.raw
        size = len(raw)
        pos = 0
        if self._body_mid_line:  # the first bytes end a line already shown
            pos = raw.find(b"\n") + 1
        if pos or not self._body_mid_line:
            while self._body_shown < MAX_TRANSCRIPT_DATA_LINES:
                end = raw.find(b"\n", pos)
                if end < 0:
                    if pos < size or not pos:  # a piece of a line, or a line without its ending
                        self._body_line(event, raw[pos:])
                    break
                line = raw[pos:end]
                self._body_line(event, line[:-1] if line.endswith(b"\r") else line)
                pos = end + 1
                if pos == size:
                    break
        self._body_mid_line = not event.data.endswith(b"\n")

    def _body_line(self, event: MultilineData, raw: bytes) -> None:
        self._body_shown += 1
        self._transcript.add(event.ts_ns, event.direction, to_text(raw))

    def _on_end(self, event: ResponseEnd) -> None:
        s = self.session
        hidden = event.lines - self._body_shown
        if hidden > 0:
            self._transcript.add(
                event.ts_ns,
                event.direction,
                f"[... {hidden} more lines]",
                f"{hidden} lines not shown",
            )
        if event.complete:
            self._transcript.add(event.ts_ns, event.direction, ".")
        if self._body_index is not None:
            old = s.exchanges[self._body_index]
            s.exchanges[self._body_index] = _replied(old, old.reply, 1 + event.lines)
        command = event.command
        sink, self._sink = self._sink, None
        if self._message is not None and command is not None:
            retrieved = RetrievedMessage(
                command=_command_text(command),
                number=_number(command),
                partial=self._message_partial or not event.complete,
                message=self._message.finish(),
                ts_ns=command.ts_ns,
            )
            s.messages.append(retrieved)
            if sink is not None:
                sink.end(retrieved.message, retrieved)
        elif sink is not None:
            sink.abandon()
        if self._capabilities is not None:
            s.capabilities = self._capabilities
        self._message = None
        self._capabilities = None
        self._body_index = None

    def _on_sasl(self, event: SaslStep) -> None:
        attempt = self._sasl_attempt
        note: str | None = None
        if event.direction is SERVER:
            if event.base64 and event.text:
                self._sasl_challenge = event.text
                note = f"decoded: {event.text}"
                if attempt is not None and attempt.mechanism == "CRAM-MD5":
                    attempt.challenge = event.text
                elif attempt is not None and attempt.mechanism == "NTLM":
                    note = describe_ntlm(event.data) or note
                    fold_ntlm_challenge(attempt, event.data)
            self._transcript.add(event.ts_ns, event.direction, to_text(event.raw), note)
            return
        if attempt is not None:
            note = self._fold_credentials(attempt, event)
        elif event.base64:
            note = f"decoded: {event.text}"
        if event.initial and self._last_command is not None:
            self._transcript.add(
                event.ts_ns, event.direction, to_text(self._last_command.raw), note
            )
        else:
            self._transcript.add(event.ts_ns, event.direction, to_text(event.raw), note)

    def _fold_credentials(self, attempt: AuthAttempt, event: SaslStep) -> str | None:
        """Fill `attempt` from one client SASL line; returns the transcript note."""
        if event.cancelled:  # RFC 5034 4: "*" cancels the exchange
            attempt.cancelled = True
            return "cancelled"
        if not event.base64:
            attempt.not_base64 = True
        data = event.data
        wire = event.raw.strip()
        plain = "" if event.base64 else " (not base64)"
        match attempt.mechanism:
            case "PLAIN":  # RFC 4616 2 (tolerant: the password never becomes the user)
                creds = decode_plain(data)
                attempt.authzid = creds.authzid or None
                attempt.username, attempt.password = creds.authcid, creds.password
                attempt.secrets += [x for x in (creds.secret, wire) if x]
                prefix = f"authzid={creds.authzid} " if creds.authzid else ""
                shape = " (malformed PLAIN)" if creds.malformed else ""
                return f"{prefix}authcid={creds.authcid} password={creds.password}{shape}{plain}"
            case "LOGIN":  # draft-murchison-sasl-login: username, then password
                asked = self._sasl_challenge.lower()
                if "pass" in asked or ("user" not in asked and attempt.username is not None):
                    attempt.password = event.text
                    attempt.secrets += [x for x in (data, wire) if x]
                    label = "password"
                else:
                    attempt.username = event.text
                    label = "username"
                self._sasl_challenge = ""
                return f"{label}: {event.text}{plain}"
            case "CRAM-MD5":  # RFC 2195 2
                cram = decode_cram_md5(data)
                if cram is None:
                    attempt.response = to_text(data)
                    attempt.secrets += [x for x in (data, wire) if x]
                    return None if event.base64 else "not base64: shown as sent"
                attempt.username, attempt.response = cram.username, cram.digest
                attempt.secrets += [x for x in (cram.secret, wire) if x]
                return f"user={cram.username} digest={cram.digest}"
            case "XOAUTH2":
                bearer = decode_xoauth2(data)
                if bearer.user is None and bearer.token is None:
                    return None if event.base64 else "not base64: shown as sent"
                # The bearer token is the secret that grants access: it is the password here.
                attempt.username, attempt.password = bearer.user, bearer.token
                attempt.secrets += [x for x in (bearer.secret or data, wire) if x]
                return f"user={bearer.user} token={bearer.token}"
            case "OAUTHBEARER":
                user, token = decode_oauthbearer(data)
                attempt.username, attempt.password = user, token
                if token is not None and wire:
                    attempt.secrets.append(wire)
                return f"user={user} token={token}"
            case "NTLM":  # [MS-NLMP]: NEGOTIATE names nobody; AUTHENTICATE is the credential
                fold_ntlm(attempt, data, wire)
                described = describe_ntlm(data) if event.base64 else None
                if described is not None:
                    return described
        if not event.base64:
            return "not base64: shown as sent"
        return f"decoded: {event.text}" if event.text else None

    def _on_gap(self, event: StreamGap) -> None:
        self._body_mid_line = False  # the line cut by the gap was shown; what follows is new
        if event.inside is not None and self._message is not None:
            self._message.note_gap(event.length)
            self._message_partial = True
        lost = f"{event.length} bytes" if event.length else "an unknown number of bytes"
        self._transcript.add(event.ts_ns, event.direction, "", f"gap: {lost} never captured")

    def _on_anomaly(self, event: Anomaly) -> None:
        self._anomalies.event(event)
        shown = event.kind in _SHOWN_ANOMALIES or (
            event.kind is Pop3AnomalyKind.UNTERMINATED_LINE and event.direction is CLIENT
        )
        if shown:
            self._transcript.add(event.ts_ns, event.direction, to_text(event.raw), event.kind)


#: POP3's registry entry (RFC 1939; implicit TLS 995 RFC 8314).
ENTRY: ProtocolEntry = ProtocolEntry(
    name="pop3",
    ports=(110,),
    implicit_tls_ports=(995,),
    greeting=grammar.is_greeting,
    handler=Pop3SessionHandler,
    record=RetrievedMessage,
    description="mailbox retrieval",
)
