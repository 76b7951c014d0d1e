"""Folds an IMAP dialogue (RFC 3501, RFC 9051; events of `protocols.imap`) into a Session record.

Commands pair with their tagged answers by tag (the parser does the pairing); every message
crossing the wire (a FETCH body section, an APPEND) goes through the shared MIME accumulator and
the export sink like a POP3 RETR, with an `ImapTransfer` saying which mailbox, UID, section and
whether it is whole. Findings are left to analysis.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from mypy_extensions import mypyc_attr

from mailsniff.limits import MAX_CAPABILITIES, MAX_TRANSCRIPT_LINES
from mailsniff.mail.mime import MessageAccumulator
from mailsniff.model import (
    AnomalyKind,
    AuthAttempt,
    Exchange,
    ImapChange,
    ImapMailbox,
    ImapState,
    ImapTransfer,
    RetrievedMessage,
    Session,
)
from mailsniff.protocols.base import Direction, to_text
from mailsniff.protocols.imap import ImapParser
from mailsniff.protocols.imap_events import (
    Anomaly,
    AuthResult,
    Capabilities,
    Command,
    Completion,
    CompressionStarted,
    Continuation,
    Copy,
    Expunged,
    Fetch,
    Greeting,
    IdInfo,
    ImapEvent,
    MailboxSelected,
    MessageData,
    MessageEnd,
    MessageGap,
    MessageStart,
    SaslStep,
    ServerStatus,
    Store,
    StreamGap,
    TlsStarted,
    Untagged,
)
from mailsniff.protocols.imap_grammar import text_of
from mailsniff.protocols.ntlm import describe_ntlm
from mailsniff.session.base import (
    AnomalyLog,
    ParserDriven,
    TranscriptRecorder,
    restore_state,
    saved_state,
)
from mailsniff.sink import MessageSink, OpenSink

__all__ = ["ImapSessionHandler"]

#: At most this many mailbox selections and message changes are kept per session.
MAX_IMAP_RECORDS = MAX_TRANSCRIPT_LINES
#: --transcript shows at most this much of a literal's first line.
_HEAD_BYTES: Final = 200


def _verb(command: Command) -> str:
    return f"UID {command.name}" if command.uid else command.name


def _argument(command: Command) -> str:
    """The command line after its tag and name, as sent (first line only)."""
    first = command.raw.split(b"\n", 1)[0].rstrip(b"\r")
    fields = first.split(None, 3 if command.uid else 2)
    skip = 3 if command.uid else 2
    return to_text(fields[skip]) if len(fields) > skip else ""


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see session/base.py
class _Open:
    """A message being read: its accumulator, sink and where it came from."""

    __slots__ = ("message", "sink", "start", "gap", "head")

    def __init__(self, start: MessageStart, sink: MessageSink | None, head: bool) -> None:
        self.start = start
        self.sink = sink
        self.message = MessageAccumulator(sink=sink)
        self.gap = False
        #: --transcript: the literal's first bytes until its first line is complete (None: shown)
        self.head: bytearray | None = bytearray() if head else None


@mypyc_attr(allow_interpreted_subclasses=True)  # pickled when parked: see session/base.py
class ImapSessionHandler(ParserDriven[ImapEvent]):
    """Drives an ImapParser and folds its events into `session` (no findings: analysis does).

    Args:
        session: the record to fill; the caller owns endpoints, times, gaps and close reason.
        open_sink: asked for a sink at the start of each fetched or appended message (export).
    """

    def __init__(self, session: Session, open_sink: OpenSink | None = None) -> None:
        self.session = session
        session.imap = self._state = ImapState()
        self._open_sink = open_sink
        self._parser = ImapParser()
        self._transcript = TranscriptRecorder(session)
        self._anomalies = AnomalyLog(session)
        # id(command) -> (command, index in session.exchanges) while it waits for its answer
        self._exchange_at: dict[int, tuple[Command, int]] = {}
        self._open: dict[int, _Open] = {}
        # message_id -> the record, until the FETCH response (UID, FLAGS) or APPEND answer
        self._done: dict[int, RetrievedMessage] = {}
        self._append_for: dict[str, RetrievedMessage] = {}  # APPEND tag -> its message
        self._sasl_secrets: dict[str, list[bytes]] = {}  # AUTHENTICATE tag -> client lines
        #: --transcript: lines that opened a literal, shown with it (not again with the command)
        self._literal_lines: list[tuple[Direction, bytes]] = []
        self._dropped = 0

    def __getstate__(self) -> dict[str, Any]:
        return saved_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Read back after parking (mailsniff.park): the commands waiting for an answer are
        new objects with new ids, so the maps keyed by their ids are keyed again."""
        restore_state(self, state)
        self._exchange_at = {id(entry[0]): entry for entry in self._exchange_at.values()}

    def close(self, ts_ns: int) -> None:
        super().close(ts_ns)
        for opened in self._open.values():  # the parser ends every message; belt and braces
            if opened.sink is not None:
                opened.sink.abandon()
        self._open.clear()
        if self._dropped:
            detail = f"records: {self._dropped} beyond the limit not kept"
            self._anomalies.note(AnomalyKind.NOT_KEPT, detail)
            self._dropped = 0
        self._anomalies.close()

    # ----------------------------------------------------------------------------------------

    def _fold(self, events: list[ImapEvent]) -> None:
        for event in events:
            match event:
                case MessageData():  # by far the most frequent
                    opened = self._open.get(event.message_id)
                    if opened is not None:
                        opened.message.feed(event.data)
                        if opened.head is not None:
                            self._literal_head(opened, event.ts_ns, event.data)
                case MessageStart():
                    self._on_message_start(event)
                case MessageGap():
                    opened = self._open.get(event.message_id)
                    if opened is not None:
                        opened.message.note_gap(event.length)
                        opened.gap = True
                case MessageEnd():
                    self._on_message_end(event)
                case Greeting():
                    self.session.banner = to_text(event.raw)
                    self._state.preauth = event.status == "PREAUTH"
                    self._show(event)
                case Command():
                    self._on_command(event)
                case Completion():
                    self._on_completion(event)
                case Capabilities():
                    self.session.capabilities = list(event.capabilities[:MAX_CAPABILITIES])
                    if event.login_disabled and not self._state.login_disabled:
                        self._state.login_disabled = True
                        self._state.login_disabled_ns = event.ts_ns
                    if event.source == "untagged":
                        self._show(event)
                case SaslStep():
                    self._on_sasl(event)
                case AuthResult():
                    self._on_auth(event)
                case MailboxSelected():
                    self._on_selected(event)
                case Fetch():
                    self._on_fetch(event)
                case Store():
                    self._change(
                        ImapChange(
                            "store",
                            event.mailbox,
                            event.messages,
                            uid=event.uid,
                            flags=list(event.flags),
                            operation=event.operation,
                            ts_ns=event.ts_ns,
                        )
                    )
                case Expunged():
                    self._show(event)
                    if not event.earlier:
                        messages = str(event.seq) if event.seq is not None else event.uids or ""
                        self._change(
                            ImapChange(
                                "expunge",
                                event.mailbox,
                                messages,
                                uid=event.uids is not None,
                                ts_ns=event.ts_ns,
                            )
                        )
                case Copy():
                    self._change(
                        ImapChange(
                            "move" if event.move else "copy",
                            event.source,
                            event.messages,
                            uid=event.uid,
                            destination=event.destination,
                            ok=event.ok,
                            ts_ns=event.ts_ns,
                        )
                    )
                case IdInfo():
                    fields = list(event.fields)
                    if event.direction is Direction.CLIENT:
                        self._state.client_id = fields
                    else:
                        self._state.server_id = fields
                        self._show(event)
                case TlsStarted():
                    self.session.tls = True
                    self._transcript.add(
                        event.ts_ns, event.direction, "", "TLS from here on: not parsed"
                    )
                case CompressionStarted():
                    self._state.compressed = True
                    self._transcript.add(
                        event.ts_ns, event.direction, "", f"{event.mechanism}: inflated from here"
                    )
                case StreamGap():
                    lost = f"{event.length} bytes" if event.length else "an unknown number of bytes"
                    self._transcript.add(
                        event.ts_ns, event.direction, "", f"gap: {lost} never captured"
                    )
                case Anomaly():
                    self._anomalies.event(event)
                case ServerStatus() | Continuation() | Untagged():
                    self._show(event)
                case _:  # LIST, STATUS, SEARCH, ENABLED, NAMESPACE, IDLE's DONE: shown as sent
                    if event.raw:
                        self._show(event)

    def _show(self, event: ImapEvent, note: str | None = None) -> None:
        if self._transcript.enabled and event.raw:
            for line in event.raw.split(b"\n"):
                line = line.rstrip(b"\r")
                if line and (event.direction, line) in self._literal_lines:
                    # shown already, with its literal's size, when the literal began
                    self._literal_lines.remove((event.direction, line))
                elif line:
                    self._transcript.add(event.ts_ns, event.direction, to_text(line), note)
                    note = None

    def _change(self, change: ImapChange) -> None:
        if len(self._state.changes) < MAX_IMAP_RECORDS:
            self._state.changes.append(change)
        else:
            self._dropped += 1

    # ----------------------------------------------------------------------------------------

    def _on_command(self, event: Command) -> None:
        s = self.session
        if not (event.name == "AUTHENTICATE" and len(event.args) > 1):
            self._show(event)  # a SASL-IR line is shown with its decoded note by _on_sasl
        if len(s.exchanges) < MAX_TRANSCRIPT_LINES:
            s.exchanges.append(
                Exchange(event.ts_ns, _verb(event), _argument(event), None, reply_lines=0)
            )
            self._exchange_at[id(event)] = (event, len(s.exchanges) - 1)
            if len(self._exchange_at) > MAX_TRANSCRIPT_LINES:  # never answered: stay bounded
                del self._exchange_at[next(iter(self._exchange_at))]
        else:
            self._dropped += 1

    def _on_completion(self, event: Completion) -> None:
        s = self.session
        self._show(event)
        command = event.command
        if command is None:
            return
        found = self._exchange_at.pop(id(command), None)
        if found is not None:
            index = found[1]
            s.exchanges[index] = replace(
                s.exchanges[index], reply=to_text(event.raw), reply_lines=1
            )
        if command.name == "APPEND":
            appended = self._append_for.pop(command.tag, None)
            if appended is not None and appended.imap is not None:
                appended.imap.outcome = event.status
                if event.code == "APPENDUID" and len(event.code_args) > 1:
                    uid = text_of(event.code_args[1])
                    if uid.isdigit():
                        appended.imap.uid = int(uid)

    def _on_sasl(self, event: SaslStep) -> None:
        note: str | None = None
        if event.cancelled:
            note = "cancelled"
        elif event.mechanism.upper() == "NTLM" and event.base64:
            note = describe_ntlm(event.data)
        if note is None and event.base64 and event.text:
            note = f"decoded: {event.text}"
        if event.direction is Direction.CLIENT:
            wire = event.raw.strip()
            if event.initial:
                fields = wire.split()
                wire = fields[-1] if fields else wire
            if wire:
                secrets = self._sasl_secrets.setdefault(event.tag, [])
                if len(secrets) < 16:
                    secrets.append(wire)
        self._show(event, note)

    def _on_auth(self, event: AuthResult) -> None:
        s = self.session
        attempt = AuthAttempt(
            event.mechanism.upper() if event.mechanism else "LOGIN",
            username=event.user,
            password=event.secret,
            success=event.success,
            reply=event.status_text or None,
            ts_ns=event.ts_ns,
            authzid=event.authzid,
        )
        if event.mechanism and event.mechanism.upper() == "CRAM-MD5":
            attempt.password, attempt.response = None, event.secret
        if event.secret_raw:
            attempt.secrets.append(event.secret_raw)
        if event.method == "AUTHENTICATE" and event.secret is not None:
            attempt.secrets += self._sasl_secrets.get(event.tag, [])
        self._sasl_secrets.pop(event.tag, None)
        if len(s.auth) < MAX_IMAP_RECORDS:
            s.auth.append(attempt)
        else:
            self._dropped += 1

    def _on_selected(self, event: MailboxSelected) -> None:
        if len(self._state.mailboxes) >= MAX_IMAP_RECORDS:
            self._dropped += 1
            return
        self._state.mailboxes.append(
            ImapMailbox(
                event.mailbox,
                event.read_only,
                event.ok,
                event.exists,
                event.recent,
                event.uidvalidity,
                event.uidnext,
                event.unseen,
                event.ts_ns,
            )
        )

    # ----------------------------------------------------------------------------------------

    def _on_message_start(self, event: MessageStart) -> None:
        sink = self._open_sink(self.session) if self._open_sink is not None else None
        self._open[event.message_id] = _Open(event, sink, self._transcript.enabled)
        first = b""
        if event.raw:
            first = event.raw.split(b"\n", 1)[0].rstrip(b"\r")
        what = event.source if event.item in ("", event.source) else f"{event.source} {event.item}"
        if first and self._transcript.enabled:
            self._literal_lines.append((event.direction, first))
            del self._literal_lines[:-16]
        self._transcript.add(
            event.ts_ns,
            event.direction,
            to_text(first) if first else what,
            f"literal: {event.size} bytes ({what})",
        )

    def _literal_head(self, opened: _Open, ts_ns: int, data: bytes, end: bool = False) -> None:
        """--transcript: the first line of a literal's content, once, below its `{n}` line."""
        head = opened.head
        assert head is not None
        head += data[: _HEAD_BYTES - len(head)]
        cut = head.find(b"\n")
        if cut < 0 and len(head) < _HEAD_BYTES and not end:
            return
        line = bytes(head if cut < 0 else head[:cut]).rstrip(b"\r")
        opened.head = None
        if line or end:
            self._transcript.add(
                ts_ns, opened.start.direction, to_text(line), "the literal's first line"
            )

    def _on_message_end(self, event: MessageEnd) -> None:
        opened = self._open.pop(event.message_id, None)
        if opened is None:
            return
        if opened.head:  # a literal shorter than its first line's end
            self._literal_head(opened, event.ts_ns, b"", end=True)
        start = opened.start
        if start.source == "APPEND":
            command = f"APPEND {start.mailbox}" if start.mailbox is not None else "APPEND"
        else:
            command = f"FETCH {start.seq} {start.item}" if start.seq is not None else "FETCH"
        record = RetrievedMessage(
            command=command,
            number=start.seq,
            partial=not start.whole or opened.gap or not event.complete,
            message=opened.message.finish(),
            ts_ns=start.ts_ns,
            imap=ImapTransfer(
                source=start.source,
                mailbox=start.mailbox,
                uid=start.uid,
                section=start.section,
                item=start.item,
                origin=start.origin,
                flags=list(start.flags),
                date=start.date,
            ),
        )
        s = self.session
        if len(s.messages) < MAX_IMAP_RECORDS:
            s.messages.append(record)
        else:
            self._dropped += 1
        if opened.sink is not None:
            opened.sink.end(record.message, record)
        if start.source == "APPEND" and start.tag is not None:
            self._append_for[start.tag] = record
        else:
            self._done[event.message_id] = record
            if len(self._done) > MAX_TRANSCRIPT_LINES:
                del self._done[next(iter(self._done))]

    def _on_fetch(self, event: Fetch) -> None:
        self._show(event)
        for message_id in event.message_ids:
            record = self._done.pop(message_id, None)
            if record is None or record.imap is None:
                continue
            if event.uid is not None:
                record.imap.uid = event.uid
            if event.flags is not None:
                record.imap.flags = list(event.flags)
