"""`mailsniff read`: open a capture, run the pipeline, render sessions, report truncation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailsniff.analysis.select import Selection
from mailsniff.analysis.sent_copy import (
    PackedCandidate,
    SentCopies,
    SentCopy,
    candidates,
    pack,
)
from mailsniff.analysis.summary import Summary
from mailsniff.capture.frame import Frame, FrameOrTime
from mailsniff.capture.multi import MultiReader, open_inputs
from mailsniff.capture.reader import CaptureReader
from mailsniff.consoles import AnyConsole, real_console, say, warn
from mailsniff.errors import TruncatedCaptureError, UnsupportedLinkTypeError, UsageError
from mailsniff.export.chain import SinkChain
from mailsniff.export.redact import redact_session
from mailsniff.model import Session
from mailsniff.net.link import is_supported, linktype_name
from mailsniff.parallel import add_stats, choose_jobs, drive, run_sharded
from mailsniff.pipeline import Pipeline
from mailsniff.render import jsonl
from mailsniff.render.text import safe_text
from mailsniff.shard import checked_frames, routed_frames
from mailsniff.status import ExitStatus
from mailsniff.stdout import Stdout

if TYPE_CHECKING:  # loaded where they are used: exports, console output, TLS (--keylog), rich
    from rich.console import Console

    from mailsniff.export.exporter import Exporter
    from mailsniff.export.zeek import ZeekLogs
    from mailsniff.spill import SessionSpill
    from mailsniff.tls.keylog import KeyLog

__all__ = ["ReadOptions", "ReadResult", "feed_capture", "read_capture", "summarise"]

_PROGRESS_EVERY = 2048


@dataclass(slots=True, frozen=True, kw_only=True)
class ReadOptions:
    """What `mailsniff read` was asked to do (the command line, parsed)."""

    path: str
    #: Several captures read as one (files, in any order; `path` is then the first).
    paths: tuple[str, ...] = ()
    jobs: int | None = None  # --jobs (None: by input size, see parallel.choose_jobs)
    #: --protocol, --host, --port, --address, --finding, --since/--until, -f (analysis/select.py)
    selection: Selection = field(default_factory=Selection)
    session_ids: frozenset[int] | None = None
    json: bool = False
    transcript: bool = False
    summary_only: bool = False
    plain: bool = False  # --plain: one tab-separated record per line (render/plain.py)
    progress: bool = True
    extract: str | None = None  # --extract DIR
    mbox: str | None = None  # --mbox FILE
    redact: bool = False  # --redact
    zeek_logs: str | None = None  # --zeek-logs DIR
    zeek_json: bool = False  # --zeek-json
    keylog: str | None = None  # --keylog FILE (TLS decryption)
    scheduler: str | None = None  # --scheduler: the shards run on this Dask cluster


@dataclass(slots=True)
class ReadResult:
    """How a read ended: its exit status, the warning line if any, the sessions shown."""

    status: ExitStatus
    warning: str | None
    sessions: int


def _frames(
    reader: CaptureReader | MultiReader,
    pipeline: Pipeline | None,
    progress: Any | None,
    task: Any | None,
) -> Iterator[Frame]:
    """Frames from the reader, checking each new link type and moving the progress bar."""
    if progress is None:
        return checked_frames(reader)

    def update() -> None:
        progress.update(task, completed=reader.bytes_read)

    return checked_frames(reader, update, _PROGRESS_EVERY)


#: The running counts behind the closing summary (the name the runners know them by).
Tally = Summary


def _time(ts_ns: int | None) -> str | None:
    return jsonl.iso8601(ts_ns) if ts_ns is not None else None


@dataclass(slots=True, frozen=True)
class RenderedSession:
    """A session's JSON line made by a --jobs worker, cut where its final id goes: UTF-8, as
    it is written (the parent joins the three and writes the bytes; no text crosses twice)."""

    head: bytes
    tail: bytes
    counts: Summary
    #: What a Sent-copy link may join, packed in the worker (the parent gives the session id).
    copies: list[PackedCandidate]

    def __reduce__(self) -> tuple[type[RenderedSession], tuple[Any, ...]]:
        # Sent by a worker for every session: as its fields (see Summary.__reduce__).
        return RenderedSession, (self.head, self.tail, self.counts, self.copies)


def summarise(tally: Tally, pipeline: Pipeline, warnings: list[str]) -> dict[str, Any]:
    """The closing summary record (JSON): counts of facts established elsewhere."""
    stats = pipeline.decoder.stats
    return {
        "sessions": tally.sessions,
        "sessions_by_protocol": dict(tally.by_protocol),
        "frames": pipeline.stats.frames,
        "first_packet": _time(pipeline.stats.first_ts_ns),
        "last_packet": _time(pipeline.stats.last_ts_ns),
        "tcp_segments": pipeline.stats.segments,
        "mail_segments": pipeline.stats.candidate_segments,
        "messages": tally.messages,
        "credentials": tally.credentials,
        "bcc_recipients": tally.bcc_recipients,
        "sent_copies": tally.sent_copies,
        "gaps": tally.gaps,
        "incomplete_sessions": tally.incomplete,
        "sessions_filtered_out": pipeline.stats.filtered,
        "decode": {
            "non_ip": stats.non_ip,
            "non_tcp": stats.non_tcp,
            "malformed": stats.malformed,
            "snaplen_truncated": stats.truncated,
            "fragments": stats.fragments,
            "fragments_dropped": stats.fragments_dropped,
            "unsupported_linktype": {str(k): v for k, v in stats.unsupported_linktype.items()},
        },
        "flows_evicted": {
            "without_data": pipeline.reassembler.evicted_empty,
            "with_data": pipeline.reassembler.evicted_with_data,
        },
        "warnings": warnings,
    }


def feed_capture(
    path: str | list[str],
    pipeline: Pipeline,
    err: AnyConsole,
    emit: Callable[[Session], None],
    *,
    progress: bool = True,
    jobs: int | None = 1,
    make_pipeline: Callable[[], Pipeline] | None = None,
    prepare: Callable[[Session], Any] | None = None,
    emit_prepared: Callable[[int, Any], None] | None = None,
    cluster: Any | None = None,
) -> tuple[ExitStatus, list[str]]:
    """Run every frame of the capture at `path` (or of several files read as one) through
    `pipeline`, handing each finished session to `emit`; returns the exit status and the
    warnings (truncation, link types, file order). With `make_pipeline` and more than one job,
    worker processes do the work and `pipeline` only collects the counts; with `prepare`
    too, the workers hand each session to it and the parent calls emit_prepared(id, result).
    With `cluster` (a cluster.ClusterRun), the shards run as its tasks instead.

    Raises MailsniffError for input that cannot be read at all.
    """
    warnings: list[str] = []
    status = ExitStatus.SUCCESS
    paths = [path] if isinstance(path, str) else path
    with open_inputs(paths) as reader:
        if reader.format == "pcap" and not any(is_supported(lt) for lt in reader.linktypes):
            lt = reader.linktypes[0]
            raise UnsupportedLinkTypeError(lt, name=linktype_name(lt))
        # Standard input can be read once only: one process.
        sharded = make_pipeline is not None and paths != ["-"]
        n = choose_jobs(jobs, reader.total_bytes) if sharded else 1
        if cluster is not None:
            n = cluster.n
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
                console=real_console(err),
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
                if n > 1 or cluster is not None:
                    assert make_pipeline is not None
                    status = _feed_sharded(
                        paths if cluster is None else cluster.absolute(),
                        n if cluster is None else cluster,
                        (make_pipeline, prepare if emit_prepared is not None else None),
                        pipeline,
                        emit_prepared or (lambda _id, session: emit(session)),
                        warnings,
                        (bar, task),
                    )
                else:
                    frames = pipeline.session_filter.frames(_frames(reader, pipeline, bar, task))
                    drive(pipeline, frames, emit)
            except TruncatedCaptureError as error:
                for session in pipeline.finish_each():
                    emit(session)
                warnings.append(_truncation_warning(error.message, error.records_read))
                status = ExitStatus.TRUNCATED
        if isinstance(reader, MultiReader) and n == 1 and cluster is None:
            warnings[:0] = reader.warnings
            if reader.truncated and status is ExitStatus.SUCCESS:
                status = ExitStatus.TRUNCATED
        for linktype, count in pipeline.decoder.stats.unsupported_linktype.items():
            warnings.append(
                f"{count} frames of unsupported link type {linktype} "
                f"({linktype_name(linktype)}) skipped"
            )
    return status, warnings


def _truncation_warning(message: str, records_read: int) -> str:
    return (
        f"{message}; {records_read} records read before it, "
        "everything before that point is reported above"
    )


def _open_frames(
    paths: list[str], selection: Selection, me: int, n: int
) -> tuple[CaptureReader | MultiReader, Iterator[FrameOrTime]]:
    """parallel.OpenFrames: the input of worker `me` of `n`. The reader routes from raw bytes
    unless -f is given (its filter sees every frame whole: what it drops is not counted)."""
    reader = open_inputs(paths)
    if selection.bpf is None:
        return reader, routed_frames(reader, me, n)
    return reader, selection.frames(_frames(reader, None, None, None))


def _feed_sharded(
    paths: list[str],
    n: int | Any,
    workers: tuple[Callable[[], Pipeline], Callable[[Session], Any] | None],
    pipeline: Pipeline,
    emit: Callable[[int, Any], None],
    warnings: list[str],
    progress: tuple[Any | None, Any | None],
) -> ExitStatus:
    """--jobs N: the workers read and analyse; sessions come back in the one-process order.
    `n` is a cluster.ClusterRun for --scheduler."""
    # A module-level function and its arguments: Dask sends it to the workers by pickle.
    open_frames = partial(_open_frames, paths, pipeline.session_filter)
    bar, task = progress

    def moved(done: int) -> None:
        if bar is not None:
            bar.update(task, completed=done)

    if isinstance(n, int):
        items = run_sharded(n, open_frames, workers[0], workers[1], moved, local=True)
    else:
        total = bar.tasks[0].total if bar is not None else None

        def shards_done(count: int) -> None:  # a cluster reports whole shards
            if total is not None:
                moved(int(total * count / n.n))

        items = n.sharded(open_frames, workers[0], workers[1], shards_done)
    status = ExitStatus.SUCCESS
    for item in items:
        if isinstance(item, tuple):
            emit(*item)
            continue
        for result in item:
            add_stats(pipeline, result.stats)
        first = item[0]
        warnings[:0] = first.warnings
        if first.truncated is not None:
            warnings.append(_truncation_warning(*first.truncated))
        if first.truncated is not None or first.set_truncated:
            status = ExitStatus.TRUNCATED
    return status


def _missing_sessions(
    wanted: frozenset[int] | None, found: set[int], known: list[int], few: list[int]
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
    elif len(few) <= _FEW_IDS and few != list(range(known[0], known[1] + 1)):
        # IDs count every TCP connection: name them when they are few and not a plain range
        there = "sessions " + ", ".join(str(n) for n in sorted(few))
    else:
        there = f"sessions {known[0]}-{known[1]}"
    return UsageError(f"--session {ids}: no such session (the capture has {there})")


def _worker_pipeline(
    session_filter: Selection, transcript: bool, keylog: KeyLog | None
) -> Pipeline:
    """A --jobs worker's pipeline (exports stay in one process; the key log travels with it)."""
    return Pipeline(session_filter=session_filter, keep_transcript=transcript, keylog=keylog)


def _prepare(redact: bool, transcript: bool, session: Session) -> RenderedSession:
    """A session's JSON line, made in a --jobs worker (JSON output)."""
    if redact:
        redact_session(session)
    counts = Summary.of([session])
    cands = candidates(session)
    session.id = 0
    line = jsonl.dumps(jsonl.session_record(session, transcript=transcript)).encode()
    head, cut, tail = line.partition(b'"id":0,')
    assert cut
    return RenderedSession(head + b'"id":', b"," + tail + b"\n", counts, pack(cands))


#: Up to this many sessions, a --session error names each ID the capture has.
_FEW_IDS = 10


def read_capture(options: ReadOptions, out: AnyConsole, err: AnyConsole) -> ReadResult:
    """Read one capture and render it to `out`; raises MailsniffError for unreadable input."""
    keylog = None
    if options.keylog is not None:
        from mailsniff.session.tls_layer import keylog_warning, open_keylog

        keylog = open_keylog(options.keylog)
        if (note := keylog_warning(keylog)) is not None:
            warn(err, safe_text(note))
    if options.scheduler is None:
        return _read_capture(options, out, err, None, keylog)
    if options.extract or options.mbox or options.zeek_logs:
        raise UsageError(
            "--scheduler cannot be combined with --extract, --mbox or --zeek-logs",
            hint="exports are written by one process on this machine; run them without it",
        )
    from mailsniff.cluster import ClusterError, ClusterRun, check_inputs, cluster_shards, connect

    paths = list(options.paths or (options.path,))
    check_inputs(paths)
    client = connect(options.scheduler)
    try:
        n = options.jobs or cluster_shards(client)
        if n < 1:
            raise ClusterError(
                f"the Dask scheduler at {options.scheduler} has no workers",
                hint="start `dask worker` processes, or give --jobs N to wait for them",
            )
        run = ClusterRun(client, n, paths)
        result = _read_capture(options, out, err, run, keylog)
        for note in run.notes:
            say(err, "mailsniff: note: ", "bold", note)
        return result
    finally:
        client.close()


def _read_capture(
    options: ReadOptions, out: AnyConsole, err: AnyConsole, cluster: Any, keylog: KeyLog | None
) -> ReadResult:
    selection = options.selection
    # Filters that need the analysed session, with an export: applied here, not by the
    # pipeline, so that the exporter (which holds each message until then) learns whether
    # its session is kept or dropped; what it writes is what is shown.
    exporting = options.extract is not None or options.mbox is not None
    after = selection if exporting and selection.after_analysis else None
    # The writers are loaded only when asked for: `read --json` starts without them.
    exporter: Exporter | None = None
    if exporting:
        from mailsniff.export.exporter import ExportOptions, open_exporter

        exporter = open_exporter(
            ExportOptions(
                extract=Path(options.extract) if options.extract is not None else None,
                mbox=Path(options.mbox) if options.mbox is not None else None,
                session_ids=options.session_ids,
                hold=after is not None,
            )
        )
    zeek: ZeekLogs | None = None
    if options.zeek_logs:
        from mailsniff.export.zeek import ZeekLogs

        zeek = ZeekLogs.open(options.zeek_logs, json_lines=options.zeek_json)
    pipeline = Pipeline(
        session_filter=selection if after is None else selection.before_analysis(),
        keep_transcript=options.transcript,
        open_sink=exporter.open_sink if exporter is not None else None,
        keylog=keylog,
    )

    # Functions of this module and their arguments: Dask sends them to its workers by pickle.
    make_pipeline = partial(_worker_pipeline, pipeline.session_filter, options.transcript, keylog)
    prepare = partial(_prepare, options.redact, options.transcript)

    # Console output only (JSON streams and keeps nothing): finished sessions wait on disk.
    spill: SessionSpill | None = None
    if not options.json:
        from mailsniff.spill import SessionSpill

        spill = SessionSpill()
    stdout = Stdout(out)  # a closed pipe or a failed write never stops the reading or the export
    tally = Tally()
    wanted = options.session_ids
    known: list[int] = []  # --session: [lowest, highest] ID of the sessions there were
    few: list[int] = []  # and the first _FEW_IDS + 1 of them
    found: set[int] = set()

    def keep(session_id: int) -> bool:
        if wanted is not None:
            if len(few) <= _FEW_IDS:
                few.append(session_id)
            if known:
                known[:] = [min(known[0], session_id), max(known[1], session_id)]
            else:
                known[:] = [session_id, session_id]
            if session_id not in wanted:
                return False
            found.add(session_id)
        return True

    def emit_rendered(session_id: int, rendered: RenderedSession) -> None:
        if not keep(session_id):
            hidden_links(copies.add_packed(session_id, rendered.copies))
        else:
            tally.merge(rendered.counts)
            links = copies.add_packed(session_id, rendered.copies)
            line = b"%b%d%b" % (rendered.head, session_id, rendered.tail)
            if not links:
                stdout.write_bytes(line)
            else:  # rare: name the other half in this record, as one process does
                record = json.loads(line)
                jsonl.add_sent_copy_refs(record, links)
                stdout.write(jsonl.dumps(record) + "\n")
            for one in links:
                stdout.write(jsonl.dumps(jsonl.sent_copy_record(one)) + "\n")

    # The Sent-copy links, counted in the tally; kept by session for the console and --plain
    # (JSON writes each as it is made).
    copies = SentCopies(tally, shown=wanted, keep=not options.json)

    def emit(session: Session) -> None:
        if after is not None and not after.keeps_session(session):
            pipeline.stats.filtered += 1  # as the pipeline counts what it filters
            if exporter is not None:
                exporter.session_dropped(session)
            return
        if keep(session.id):
            chain(session)
        else:  # not shown, but it may be the other half of a shown session's Sent copy
            hidden_links(copies.session_done(session))

    def hidden_links(links: list[SentCopy]) -> None:
        if options.json:
            for one in links:
                stdout.write(jsonl.dumps(jsonl.sent_copy_record(one)) + "\n")

    def show(session: Session) -> None:
        links = copies.session_done(session)
        if options.json:
            record = jsonl.session_record(session, transcript=options.transcript)
            jsonl.add_sent_copy_refs(record, links)
            stdout.write(jsonl.dumps(record) + "\n")
            for one in links:
                stdout.write(jsonl.dumps(jsonl.sent_copy_record(one)) + "\n")
        elif spill is not None:
            spill.add(session)

    chain = SinkChain(redact=options.redact, exporter=exporter, logs=zeek, summary=tally, show=show)

    try:
        status, warnings = feed_capture(
            list(options.paths or (options.path,)),
            pipeline,
            err,
            emit,
            progress=options.progress,
            jobs=options.jobs,
            make_pipeline=make_pipeline if exporter is None and zeek is None else None,
            prepare=prepare,
            emit_prepared=emit_rendered if options.json else None,
            cluster=cluster,
        )
    finally:
        if exporter is not None:
            exporter.close()
        if zeek is not None:
            zeek.close()

    refused = exporter.refused if exporter is not None else []
    for text in refused:
        warn(err, text)
    missing = _missing_sessions(wanted, found, known, few)
    if options.json:
        summary = summarise(tally, pipeline, warnings)
        stdout.write(jsonl.dumps(jsonl.summary_record(summary)) + "\n")
    elif spill is not None and stdout.error is None and missing is None:
        try:
            _render(real_console(out), options, spill, pipeline, warnings, copies)
        except OSError as error:
            stdout.failed(error)
    if spill is not None:
        spill.close()
    if missing is not None:
        raise missing
    warning = "; ".join(warnings) if status is ExitStatus.TRUNCATED else None
    if stdout.error is not None:
        if warning is not None:
            warn(err, warning)
        stdout.check()
    if refused and status is ExitStatus.SUCCESS:
        status = ExitStatus.EXPORT_REFUSED
    return ReadResult(status=status, warning=warning, sessions=tally.sessions)


def _render(
    out: Console,
    options: ReadOptions,
    spill: SessionSpill,
    pipeline: Pipeline,
    warnings: list[str],
    copies: SentCopies,
) -> None:
    """The console report: overview, sessions, summary (sorted by start time, then id)."""
    if options.plain:
        _render_plain(out, options, spill, pipeline, warnings, copies)
        return
    from mailsniff.render import console as console_render

    wanted = options.session_ids
    single = wanted is not None and len(spill) == 1
    if not single:
        console_render.render_overview_rows(out, len(spill), spill.widths, spill.rows())
    if not options.summary_only:
        for session in spill.sessions():
            console_render.render_session(
                out,
                session,
                transcript=options.transcript,
                sent_copies=copies.of(session.id),
            )
    console_render.render_summary_of(
        out,
        copies.summary,
        packets=pipeline.stats.frames,
        warnings=warnings,
        filtered=pipeline.stats.filtered,
    )


def _render_plain(
    out: Console,
    options: ReadOptions,
    spill: SessionSpill,
    pipeline: Pipeline,
    warnings: list[str],
    copies: SentCopies,
) -> None:
    """--plain: the same facts, one tab-separated record per line."""
    from mailsniff.render import plain

    write = out.file.write
    for session in spill.sessions():
        for line in plain.session_lines(
            session,
            summary_only=options.summary_only,
            transcript=options.transcript,
            sent_copies=copies.of(session.id),
        ):
            write(line + "\n")
    for line in plain.summary_lines(
        copies.summary,
        packets=pipeline.stats.frames,
        filtered=pipeline.stats.filtered,
        warnings=warnings,
    ):
        write(line + "\n")
    out.file.flush()
