"""`mailsniff read`: open a capture, run the pipeline, render sessions, report truncation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from mailsniff.capture.frame import Frame
from mailsniff.capture.reader import CaptureReader, open_capture
from mailsniff.errors import TruncatedCaptureError, UnsupportedLinkTypeError, UsageError
from mailsniff.export import ExportOptions, open_exporter
from mailsniff.export.redact import redact_session
from mailsniff.model import Protocol, Session
from mailsniff.net.link import is_supported, linktype_name
from mailsniff.pipeline import Pipeline, SessionFilter
from mailsniff.render import console as console_render
from mailsniff.render import jsonl
from mailsniff.render.text import safe_text
from mailsniff.session.tls_layer import keylog_warning, open_keylog
from mailsniff.status import ExitStatus
from mailsniff.stdout import Stdout

__all__ = ["ReadOptions", "ReadResult", "feed_capture", "read_capture", "summarise"]

_PROGRESS_EVERY = 2048


@dataclass(slots=True, frozen=True, kw_only=True)
class ReadOptions:
    path: str
    protocols: frozenset[Protocol] | None = None
    hosts: frozenset[str] | None = None
    ports: frozenset[int] | None = None
    session_ids: frozenset[int] | None = None
    json: bool = False
    transcript: bool = False
    summary_only: bool = False
    progress: bool = True
    extract: str | None = None  # --extract DIR
    mbox: str | None = None  # --mbox FILE
    redact: bool = False  # --redact
    keylog: str | None = None  # --keylog FILE (TLS decryption)


@dataclass(slots=True)
class ReadResult:
    status: ExitStatus
    warning: str | None
    sessions: int


def _frames(
    reader: CaptureReader, pipeline: Pipeline, progress: Any | None, task: Any | None
) -> Iterator[Frame]:
    """Frames from the reader, checking each new link type and moving the progress bar."""
    checked: set[int] = set()
    count = 0
    for frame in reader:
        if frame.linktype not in checked:
            checked.add(frame.linktype)
            if not is_supported(frame.linktype) and not any(
                is_supported(lt) for lt in reader.linktypes
            ):
                raise UnsupportedLinkTypeError(frame.linktype, name=linktype_name(frame.linktype))
        count += 1
        if progress is not None and count % _PROGRESS_EVERY == 0:
            progress.update(task, completed=reader.bytes_read)
        yield frame


@dataclass(slots=True)
class Tally:
    """Running counts for the closing summary, so JSON output need not keep sessions."""

    sessions: int = 0
    by_protocol: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    credentials: int = 0
    bcc_recipients: int = 0
    gaps: int = 0
    incomplete: int = 0

    def add(self, s: Session) -> None:
        self.sessions += 1
        self.by_protocol[s.protocol.value] = self.by_protocol.get(s.protocol.value, 0) + 1
        self.messages += sum(1 for t in s.transactions if t.message is not None)
        self.messages += len(s.messages)
        self.credentials += sum(1 for a in s.auth if a.password is not None or a.response)
        self.bcc_recipients += sum(len(t.bcc) for t in s.transactions)
        self.gaps += len(s.gaps)
        self.incomplete += 0 if s.complete else 1


def summarise(tally: Tally, pipeline: Pipeline, warnings: list[str]) -> dict[str, Any]:
    """The closing summary record (JSON): counts of facts established elsewhere."""
    stats = pipeline.decoder.stats
    return {
        "sessions": tally.sessions,
        "sessions_by_protocol": dict(tally.by_protocol),
        "frames": pipeline.stats.frames,
        "tcp_segments": pipeline.stats.segments,
        "mail_segments": pipeline.stats.candidate_segments,
        "messages": tally.messages,
        "credentials": tally.credentials,
        "bcc_recipients": tally.bcc_recipients,
        "gaps": tally.gaps,
        "incomplete_sessions": tally.incomplete,
        "decode": {
            "non_ip": stats.non_ip,
            "non_tcp": stats.non_tcp,
            "malformed": stats.malformed,
            "snaplen_truncated": stats.truncated,
            "fragments": stats.fragments,
            "fragments_dropped": stats.fragments_dropped,
            "unsupported_linktype": {str(k): v for k, v in stats.unsupported_linktype.items()},
        },
        "warnings": warnings,
    }


def feed_capture(
    path: str,
    pipeline: Pipeline,
    err: Console,
    emit: Callable[[Session], None],
    *,
    progress: bool = True,
) -> tuple[ExitStatus, list[str]]:
    """Run every frame of the capture at `path` through `pipeline`, handing each finished
    session to `emit`; returns the exit status and the warnings (truncation, link types).

    Raises MailsniffError for input that cannot be read at all.
    """
    warnings: list[str] = []
    status = ExitStatus.SUCCESS
    with open_capture(path) as reader:
        if reader.format == "pcap" and not is_supported(reader.linktypes[0]):
            lt = reader.linktypes[0]
            raise UnsupportedLinkTypeError(lt, name=linktype_name(lt))
        show_progress = progress and err.is_terminal and reader.total_bytes is not None
        progress_cm: Any = nullcontext()
        bar = task = None
        if show_progress:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                # rich would otherwise route stdout through the bar's console (stderr): the
                # JSON Lines written to stdout must stay on stdout.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            task = bar.add_task("reading", total=reader.total_bytes)
            progress_cm = bar
        with progress_cm:
            try:
                for session in pipeline.run(_frames(reader, pipeline, bar, task)):
                    emit(session)
            except TruncatedCaptureError as error:
                pipeline.finish()
                for session in pipeline.drain():
                    emit(session)
                warnings.append(
                    f"{error.message}; {error.records_read} records read before it, "
                    "everything before that point is reported above"
                )
                status = ExitStatus.TRUNCATED
        for linktype, count in pipeline.decoder.stats.unsupported_linktype.items():
            warnings.append(
                f"{count} frames of unsupported link type {linktype} "
                f"({linktype_name(linktype)}) skipped"
            )
    return status, warnings


def _missing_sessions(
    wanted: frozenset[int] | None, found: set[int], known: list[int]
) -> UsageError | None:
    """--session asked for an ID the capture (after the other filters) does not have."""
    missing = sorted((wanted or frozenset()) - found)
    if not missing:
        return None
    ids = ", ".join(str(n) for n in missing)
    if not known:
        there = "no matching session"
    elif known[0] == known[1]:
        there = f"only session {known[0]}"
    else:
        there = f"sessions {known[0]}-{known[1]}"
    return UsageError(f"--session {ids}: no such session (the capture has {there})")


def read_capture(options: ReadOptions, out: Console, err: Console) -> ReadResult:
    """Read one capture and render it to `out`; raises MailsniffError for unreadable input."""
    keylog = open_keylog(options.keylog) if options.keylog is not None else None
    if keylog is not None and (note := keylog_warning(keylog)) is not None:
        err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(safe_text(note)))
    exporter = open_exporter(
        ExportOptions(
            extract=Path(options.extract) if options.extract is not None else None,
            mbox=Path(options.mbox) if options.mbox is not None else None,
            session_ids=options.session_ids,
        )
    )
    pipeline = Pipeline(
        session_filter=SessionFilter(
            protocols=options.protocols, hosts=options.hosts, ports=options.ports
        ),
        keep_transcript=options.transcript,
        open_sink=exporter.open_sink if exporter is not None else None,
        keylog=keylog,
    )
    sessions: list[Session] = []  # console output only: JSON streams and keeps nothing
    stdout = Stdout()  # a closed pipe or a failed write never stops the reading or the export
    tally = Tally()
    wanted = options.session_ids
    known: list[int] = []  # --session: [lowest, highest] ID of the sessions there were
    found: set[int] = set()

    def emit(session: Session) -> None:
        if wanted is not None:
            if known:
                known[:] = [min(known[0], session.id), max(known[1], session.id)]
            else:
                known[:] = [session.id, session.id]
            if session.id not in wanted:
                return
            found.add(session.id)
        if options.redact:
            redact_session(session)
        if exporter is not None:
            exporter.session_done(session)
        tally.add(session)
        if options.json:
            line = jsonl.dumps(jsonl.session_record(session, transcript=options.transcript))
            stdout.write(line + "\n")
        else:
            sessions.append(session)

    try:
        status, warnings = feed_capture(
            options.path, pipeline, err, emit, progress=options.progress
        )
    finally:
        if exporter is not None:
            exporter.close()

    refused = exporter.refused if exporter is not None else []
    for text in refused:
        err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(text))
    missing = _missing_sessions(wanted, found, known)
    if options.json:
        summary = summarise(tally, pipeline, warnings)
        stdout.write(jsonl.dumps(jsonl.summary_record(summary)) + "\n")
    elif stdout.error is None and missing is None:
        try:
            _render(out, options, sessions, pipeline, warnings)
        except OSError as error:
            stdout.failed(error)
    if missing is not None:
        raise missing
    warning = "; ".join(warnings) if status is ExitStatus.TRUNCATED else None
    if stdout.error is not None:
        if warning is not None:
            err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(warning))
        stdout.check()
    if refused and status is ExitStatus.SUCCESS:
        status = ExitStatus.EXPORT_REFUSED
    return ReadResult(status=status, warning=warning, sessions=tally.sessions)


def _render(
    out: Console,
    options: ReadOptions,
    sessions: list[Session],
    pipeline: Pipeline,
    warnings: list[str],
) -> None:
    """The console report: overview, sessions, summary."""
    wanted = options.session_ids
    ordered = sorted(sessions, key=lambda s: (s.start_ns, s.id))
    single = wanted is not None and len(ordered) == 1
    if not single:
        console_render.render_overview(out, ordered)
    if not options.summary_only:
        for session in ordered:
            console_render.render_session(out, session, transcript=options.transcript)
    console_render.render_summary(
        out, sessions=ordered, packets=pipeline.stats.frames, warnings=warnings
    )
