"""`mailsniff live`: SMTP (RFC 5321), POP3 (RFC 1939) and IMAP sessions analysed as they end."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from mailsniff.analysis.sent_copy import SentCopies
from mailsniff.capture.sniff import (
    PcapWriter,
    default_interface,
    open_capture_socket,
)
from mailsniff.commands.read import Tally, summarise
from mailsniff.errors import InputError, UsageError
from mailsniff.export.chain import SinkChain
from mailsniff.export.exporter import Exporter, ExportOptions, open_exporter
from mailsniff.model import Session
from mailsniff.pipeline import Pipeline
from mailsniff.render import console as console_render
from mailsniff.render import jsonl, plain
from mailsniff.render.creds import CredentialTable, render_credentials
from mailsniff.render.live_view import open_sessions_view, summary_panel, transcript_line
from mailsniff.render.text import format_size, safe_text
from mailsniff.session import registry
from mailsniff.session.tls_layer import keylog_warning, open_keylog
from mailsniff.status import ExitStatus

if TYPE_CHECKING:
    from mailsniff.capture.process import ProcessCapture

__all__ = [
    "DEFAULT_PORTS",
    "LiveOptions",
    "LiveResult",
    "build_filter",
    "run_live",
]

#: Captured by default: cleartext SMTP and POP3, and the implicit-TLS ports (reported only).
DEFAULT_PORTS: tuple[int, ...] = tuple(
    sorted(p for e in registry.entries() for p in e.ports)
) + tuple(sorted(p for e in registry.entries() for p in e.implicit_tls_ports))
#: Frames analysed between two looks at the clock, the stop flag and the screen.
_BATCH = 1024
#: Seconds between refreshes of the live view, and between idle-connection checks.
_REFRESH_S = 0.25
_EXPIRE_S = 1.0


@dataclass(slots=True, frozen=True, kw_only=True)
class LiveOptions:
    iface: str | None = None
    ports: tuple[int, ...] | None = None
    bpf: str | None = None
    json: bool = False
    #: --plain: one tab-separated record per line as each session ends (render/plain.py); with
    #: --transcript the `line` records as the dialogue lines arrive
    plain: bool = False
    transcript: bool = False
    write: str | None = None
    count: int | None = None
    duration: float | None = None
    #: -B: bytes of kernel ring; --spill-size: backlog kept for analysis (None: the defaults
    #: of capture.ring and capture.process).
    buffer_size: int | None = None
    spill_size: int | None = None
    jobs: int = 1  # --jobs: analysis processes (mailsniff.commands.live_jobs)
    extract: str | None = None  # --extract DIR (mailsniff.export)
    mbox: str | None = None  # --mbox FILE
    creds: bool = False  # --creds: the credentials table at the end
    redact: bool = False  # --redact
    keylog: str | None = None  # --keylog FILE, followed as it grows (TLS decryption)


@dataclass(slots=True)
class LiveResult:
    status: ExitStatus
    sessions: int
    stop_reason: str


def build_filter(ports: Sequence[int] | None, expression: str | None) -> str:
    """The BPF expression: --ports (default: the mail ports) or -f; both given: both must match."""
    for port in ports or ():
        if not 0 < port < 65536:
            raise UsageError(f"--ports: not a TCP port: {port}")
    port_filter = "tcp and (" + " or ".join(f"port {p}" for p in (ports or DEFAULT_PORTS)) + ")"
    if expression is None:
        return port_filter
    if not expression.strip():
        raise UsageError("-f: the capture filter is empty")
    if ports:
        return f"({port_filter}) and ({expression})"
    return expression


@dataclass(slots=True)
class _Stop:
    """Why the run ends; set from signal handlers and the main loop."""

    reason: str | None = None
    event: threading.Event = field(default_factory=threading.Event)

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()


@contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    """SIGINT and SIGTERM end the capture cleanly instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set("interrupted" if signum == signal.SIGINT else "terminated")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _open_flow_bytes(pipeline: Pipeline) -> dict[int, int]:
    """Stream bytes so far of each open connection, by flow id (= session id)."""
    return {f.id: f.client_bytes + f.server_bytes for f in pipeline.reassembler.flows()}


@dataclass(slots=True)
class _Run:
    options: LiveOptions
    out: Console
    err: Console
    pipeline: Pipeline
    tally: Tally = field(default_factory=Tally)
    shown_lines: dict[int, int] = field(default_factory=dict)
    exporter: Exporter | None = None
    credentials: CredentialTable | None = None
    #: SMTP messages and IMAP APPENDs awaiting their other half (the Sent copy), counted in
    #: the tally (set in __post_init__).
    copies: SentCopies = field(init=False)

    def __post_init__(self) -> None:
        self.copies = SentCopies(self.tally)

    def emit(self, session: Session) -> None:
        SinkChain(
            redact=self.options.redact,
            exporter=self.exporter,
            credentials=self.credentials,
            summary=self.tally,
            show=self._show,
        )(session)

    def _show(self, session: Session) -> None:
        if self.options.transcript and not self.options.json:
            # The lines not written yet: those since the last refresh, with --redact all of
            # them (the chain has just masked the finished session).
            self._stream_lines(session)
        self.shown_lines.pop(session.id, None)
        links = self.copies.session_done(session)
        if self.options.plain:
            # With --transcript the `line` records were written as they came: not repeated.
            lines = plain.session_lines(
                session, summary_only=False, transcript=False, sent_copies=links
            )
            self.write_plain(lines)
        elif self.options.json:
            record = jsonl.session_record(session, transcript=self.options.transcript)
            jsonl.add_sent_copy_refs(record, links)
            self.write_json(jsonl.dumps(record))
            for link in links:
                self.write_json(jsonl.dumps(jsonl.sent_copy_record(link)))
        else:
            # With --transcript the lines were printed as they came: not repeated here.
            console_render.render_session(self.out, session, transcript=False, sent_copies=links)

    def write_plain(self, lines: Iterable[str]) -> None:
        """--plain records, straight to stdout (no live view is ever drawn there)."""
        self.out.file.write("".join(line + "\n" for line in lines))
        self.out.file.flush()

    def write_json(self, line: str) -> None:
        """One JSON line on stdout; on a terminal through the stdout console, so that a live
        view drawn there is moved below it instead of overwriting it."""
        if self.out.is_terminal:
            self.out.out(line, highlight=False)
        else:
            self.out.file.write(line + "\n")
            self.out.file.flush()

    @property
    def streams_transcript(self) -> bool:
        """--transcript on the console or --plain: dialogue lines written as they arrive. Not
        with --json (they are a field of the session's record), nor with --redact: a secret is
        known for sure only once its session has ended (IMAP records a LOGIN at its answer),
        so the lines wait for the session, masked with the rest of it."""
        return self.options.transcript and not (self.options.json or self.options.redact)

    def stream_transcripts(self) -> None:
        """--transcript: write each open session's new dialogue lines."""
        for s in self.pipeline.open_sessions:
            self._stream_lines(s)

    def _stream_lines(self, s: Session) -> None:
        start = self.shown_lines.get(s.id, 0)
        if len(s.transcript) > start:
            new = s.transcript[start:]
            if self.options.plain:
                self.write_plain(plain.transcript_lines(s.id, new))
            else:
                for line in new:
                    self.out.print(transcript_line(s.id, line), soft_wrap=True)
            self.shown_lines[s.id] = len(s.transcript)


def run_live(options: LiveOptions, out: Console, err: Console) -> LiveResult:
    """Capture until -c / --duration / a signal, rendering sessions as they end.

    Raises MailsniffError (unknown interface, bad filter, no permission) before capturing.
    """
    from mailsniff.capture.process import DEFAULT_SPILL, ProcessCapture
    from mailsniff.capture.ring import DEFAULT_BUFFER

    if options.count is not None and options.count < 1:
        raise UsageError("-c: the packet count must be at least 1")
    if options.duration is not None and options.duration <= 0:
        raise UsageError("--duration: must be more than 0 seconds")
    iface = options.iface or default_interface()
    bpf = build_filter(options.ports, options.bpf)
    keylog = open_keylog(options.keylog, live=True) if options.keylog is not None else None
    if keylog is not None and (note := keylog_warning(keylog)) is not None:
        err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(safe_text(note)))
    exporter = open_exporter(
        ExportOptions(
            extract=Path(options.extract) if options.extract is not None else None,
            mbox=Path(options.mbox) if options.mbox is not None else None,
        )
    )
    try:
        source = open_capture_socket(iface, bpf, ring_size=options.buffer_size or DEFAULT_BUFFER)
    except BaseException:
        if exporter is not None:
            exporter.close()
        raise
    writer: PcapWriter | None = None
    capture: ProcessCapture | None = None
    try:
        if options.write is not None:
            writer = PcapWriter(options.write, source.linktype)
        # Capture runs in a process of its own that only moves ring blocks to a spool;
        # analysis reads the spool at its own pace (mailsniff.capture.process).
        jobs = 1 if options.transcript or exporter is not None else options.jobs
        capture = ProcessCapture(
            source=source,
            writer=writer,
            count=options.count,
            spill=options.spill_size or DEFAULT_SPILL,
            readers=jobs,
        )
        queue = capture.queue
        pipeline = Pipeline(
            keep_transcript=options.transcript,
            open_sink=exporter.open_sink if exporter is not None else None,
            keylog=keylog,
            wait_for_keys=keylog is not None,
        )
        run = _Run(
            options=options,
            out=out,
            err=err,
            pipeline=pipeline,
            exporter=exporter,
            credentials=CredentialTable() if options.creds else None,
        )
        stop = _Stop()
        with _signals(stop):
            capture.start()
            err.print(
                Text(safe_text(f"mailsniff: capturing on {iface} (filter: {bpf}); Ctrl-C to stop")),
                soft_wrap=True,
            )
            err.file.flush()
            if jobs > 1:
                from mailsniff.commands.live_jobs import run_jobs

                run_jobs(run, capture, stop, jobs)
            else:
                _loop(run, capture, stop)
            capture.stop()
            if (behind := capture.process.backlog()) >= 4 * 1024 * 1024:
                err.print(
                    f"mailsniff: analysing the {format_size(behind)} captured before the stop"
                )
            # Frames captured before the stop are still analysed; then every open session
            # ends as incomplete (close reason "eof").
            while frames := queue.get_batch(_BATCH, 0):
                for frame in frames:
                    pipeline.feed(frame)
                for session in pipeline.drain():
                    run.emit(session)
            pipeline.finish()
            for session in pipeline.drain():
                run.emit(session)
        if capture.error is not None:
            raise InputError(
                f"capture on {iface} failed: {capture.error.strerror or capture.error}"
            )
    finally:
        if capture is not None:
            capture.close()
        source.close()
        if writer is not None:
            writer.close()
        if exporter is not None:
            exporter.close()
    reason = stop.reason or "stopped"
    if run.credentials is not None:
        render_credentials(out, run.credentials.rows(), json=options.json, plain=options.plain)
    live = {
        "interface": iface,
        "filter": bpf,
        "stopped": reason,
        "captured": capture.captured,
        "kernel_dropped": capture.kernel_dropped,
        "mailsniff_dropped": queue.dropped,
        "buffer_size": source.ring.size if source.ring is not None else 0,
        "spill_peak": capture.process.peak_backlog,
    }
    warnings: list[str] = []
    if capture.kernel_dropped or queue.dropped:
        warnings.append(
            f"{capture.kernel_dropped} packets dropped by the kernel, {queue.dropped} by "
            "mailsniff (analysis fell behind by more than --spill-size): sessions around them "
            "have gaps"
        )
    if keylog is not None:
        keylog.refresh()  # lines appended while capturing (with --jobs the workers read them)
        if (note := keylog_warning(keylog)) is not None:
            warnings.append(note)
            err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(safe_text(note)))
    if options.plain:
        lines = plain.summary_lines(
            run.tally, packets=pipeline.stats.frames, filtered=0, warnings=warnings
        )
        run.write_plain([*lines, *plain.live_lines(live)])
    elif options.json:
        summary = summarise(run.tally, pipeline, warnings)
        summary["live"] = live
        run.write_json(jsonl.dumps(jsonl.summary_record(summary)))
    else:
        out.print(summary_panel(run.tally, live))
    err.print(
        Text(
            f"mailsniff: {reason}: {capture.captured} packets, {run.tally.sessions} sessions, "
            f"{run.tally.messages} messages, {run.tally.credentials} credentials, "
            f"{run.tally.bcc_recipients} Bcc recipients; dropped {capture.kernel_dropped} by "
            f"the kernel, {queue.dropped} by mailsniff"
        ),
        soft_wrap=True,
    )
    return LiveResult(status=ExitStatus.SUCCESS, sessions=run.tally.sessions, stop_reason=reason)


def _loop(run: _Run, capture: ProcessCapture, stop: _Stop) -> None:
    options, pipeline, queue = run.options, run.pipeline, capture.queue
    deadline = None if options.duration is None else time.monotonic() + options.duration
    # The view goes where the output goes when both are on the terminal: a live display is
    # only kept clear of what is printed through its own console (rich prints above it), and
    # one drawn on stderr would overwrite and erase lines printed on stdout. --plain records
    # are never redrawn over: no view when they go to the terminal.
    show_view = run.err.is_terminal and not (options.plain and run.out.is_terminal)
    view_console = run.out if run.out.is_terminal else run.err
    live_cm: Any = nullcontext()
    live = None
    if show_view:
        from rich.live import Live

        live = Live(
            open_sessions_view([], {}, 0, view_console.width),
            console=view_console,
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        live_cm = live
    next_refresh = next_expire = time.monotonic()
    with live_cm:
        while not stop.event.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stop.set("duration reached")
                break
            wait = _REFRESH_S if deadline is None else max(0.0, min(_REFRESH_S, deadline - now))
            frames = queue.get_batch(_BATCH, wait)
            for frame in frames:
                pipeline.feed(frame)
            if not frames and capture.done.is_set():
                if capture.error is None and options.count is not None:
                    stop.set(f"{options.count} packets captured")
                else:
                    stop.set("capture ended")
                break
            for session in pipeline.drain():
                run.emit(session)
            now = time.monotonic()
            if now >= next_expire:
                next_expire = now + _EXPIRE_S
                pipeline.retry_keys(time.time_ns())  # key log lines written meanwhile
                pipeline.expire(time.time_ns())
                capture.update_kernel_stats()
                for session in pipeline.drain():
                    run.emit(session)
            if now >= next_refresh:
                next_refresh = now + _REFRESH_S
                if run.streams_transcript:
                    run.stream_transcripts()
                if live is not None:
                    view = open_sessions_view(
                        pipeline.open_sessions,
                        _open_flow_bytes(pipeline),
                        capture.captured,
                        view_console.width,
                    )
                    live.update(view, refresh=True)
