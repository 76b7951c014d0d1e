"""A test-only protocol: a line-based echo service, registered through the protocol registry.

Grammar: the server greets `ECHO ready`; every client line is echoed back by the server. A
client line `MSG` starts a message: the client's following lines up to a lone `.` are its
content, and the server answers the `MSG` once the `.` came, as after DATA. Nothing in mailsniff
knows this protocol.
"""

from __future__ import annotations

from enum import StrEnum

from mailsniff.mail.mime import MessageAccumulator
from mailsniff.model import Direction, Exchange, RetrievedMessage, Session, SessionAnomaly
from mailsniff.protocols.base import ReceiveBuffer, to_text
from mailsniff.session.base import TranscriptRecorder
from mailsniff.session.entry import ProtocolEntry
from mailsniff.sink import MessageSink, OpenSink

PORT = 7007


class EchoAnomalyKind(StrEnum):
    """The echo protocol's own anomaly (a protocol names its kinds; the core knows none)."""

    UNPAIRED_LINE = "unpaired-line"  # a server line while no client line waits for its echo


class EchoHandler:
    """Folds an echo dialogue into a Session: banner, one Exchange per line, messages."""

    def __init__(self, session: Session, open_sink: OpenSink | None = None) -> None:
        self.session = session
        self._open_sink = open_sink
        self._buffers = {Direction.CLIENT: ReceiveBuffer(), Direction.SERVER: ReceiveBuffer()}
        self._waiting: list[tuple[int, str]] = []
        self._message: MessageAccumulator | None = None
        self._sink: MessageSink | None = None
        self._transcript = TranscriptRecorder(session)

    def data(self, ts_ns: int, direction: Direction, data: bytes) -> None:
        buf = self._buffers[direction]
        buf.append(data)
        while (line := buf.take_line()) is not None:
            text = to_text(line.raw)
            self._transcript.add(ts_ns, direction, text)
            if direction is Direction.CLIENT:
                self._client_line(ts_ns, line.raw, text)
            elif self.session.banner is None and not self._waiting:
                self.session.banner = text
            elif self._waiting:
                sent_ns, command = self._waiting.pop(0)
                verb, _, argument = command.partition(" ")
                self.session.exchanges.append(Exchange(sent_ns, verb.upper(), argument, text))
            else:
                detail = f"server line without a client line: {text!r}"
                self.session.anomalies.append(SessionAnomaly(EchoAnomalyKind.UNPAIRED_LINE, detail))

    def _client_line(self, ts_ns: int, raw: bytes, text: str) -> None:
        if self._message is not None:
            if raw == b".":
                self._end_message(ts_ns)
            else:
                self._message.feed(raw + b"\r\n")
            return
        self._waiting.append((ts_ns, text))
        if text.upper() == "MSG":
            self._sink = self._open_sink(self.session) if self._open_sink else None
            self._message = MessageAccumulator(sink=self._sink)

    def _end_message(self, ts_ns: int) -> None:
        assert self._message is not None
        retrieved = RetrievedMessage("MSG", None, False, self._message.finish(), ts_ns)
        self.session.messages.append(retrieved)
        if self._sink is not None:
            self._sink.end(retrieved.message, retrieved)
        self._message = self._sink = None

    def gap(self, ts_ns: int, direction: Direction, length: int) -> None:
        self._buffers[direction].clear()

    def close(self, ts_ns: int) -> None:
        if self._message is not None and self._sink is not None:
            self._sink.abandon()
        for sent_ns, command in self._waiting:
            verb, _, argument = command.partition(" ")
            self.session.exchanges.append(Exchange(sent_ns, verb.upper(), argument, None))
        self._waiting.clear()


ENTRY = ProtocolEntry(
    name="echo",
    ports=(PORT,),
    greeting=lambda payload: payload.startswith(b"ECHO ready"),
    handler=EchoHandler,
    record=RetrievedMessage,
    description="line echo (test only)",
)
