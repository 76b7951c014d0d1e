"""`mailsniff report`: read captures as `read --json --transcript` does, render one HTML file."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from mailsniff import __version__
from mailsniff.analysis.select import Selection
from mailsniff.analysis.sent_copy import SentCopies
from mailsniff.commands.read import Tally, feed_capture, summarise
from mailsniff.errors import InputError, OutputError, UsageError
from mailsniff.export.redact import redact_session
from mailsniff.model import Session
from mailsniff.pipeline import Pipeline
from mailsniff.render import jsonl
from mailsniff.render.creds import CredentialTable, credential_record
from mailsniff.render.report import ReportBuilder, ReportInput
from mailsniff.session.tls_layer import open_keylog
from mailsniff.status import ExitStatus
from mailsniff.tls import KeyLog

__all__ = ["ReportOptions", "ReportResult", "file_digest", "write_report"]

_BLOCK = 1 << 20


@dataclass(slots=True, frozen=True, kw_only=True)
class ReportOptions:
    paths: tuple[str, ...]
    output: str
    command_line: str
    #: --host, --port, --address, ... (analysis/select.py)
    selection: Selection = field(default_factory=Selection)
    redact: bool = False
    progress: bool = True
    keylog: str | None = None  # --keylog FILE (TLS decryption)


@dataclass(slots=True)
class ReportResult:
    status: ExitStatus
    warning: str | None
    sessions: int


def file_digest(path: str) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
                size += len(block)
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from None
    return size, digest.hexdigest()


def write_report(options: ReportOptions, err: Console) -> ReportResult:
    """Read every capture, then write the report to `options.output` (atomically)."""
    if "-" in options.paths:
        raise UsageError("report: give capture files, not standard input (their sha256 is shown)")
    keylog = open_keylog(options.keylog) if options.keylog is not None else None
    builder = ReportBuilder()
    builder.expect_inputs(len(options.paths))
    status = ExitStatus.SUCCESS
    warnings: list[str] = []
    sessions = 0
    for index, path in enumerate(options.paths):
        item, read_warnings, count = _read_one(builder, index, path, options, err, keylog)
        builder.add_input(item)
        if item.status != _WHOLE:
            status = ExitStatus.TRUNCATED
            warnings.extend(f"{path}: {w}" for w in read_warnings)
        sessions += count
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = builder.render(
        version=__version__, command_line=options.command_line, generated=generated
    )
    _write_atomically(Path(options.output), page)
    return ReportResult(
        status=status, warning="; ".join(warnings) if warnings else None, sessions=sessions
    )


_WHOLE = "read to its end"


def _read_one(
    builder: ReportBuilder,
    index: int,
    path: str,
    options: ReportOptions,
    err: Console,
    keylog: KeyLog | None,
) -> tuple[ReportInput, list[str], int]:
    """Run one capture through the read path, handing each session record to the builder."""
    pipeline = Pipeline(keep_transcript=True, session_filter=options.selection, keylog=keylog)
    tally = Tally()
    copies = SentCopies(tally)  # the Sent-copy links of this input, counted in its summary
    creds = CredentialTable()
    hint = f"mailsniff read {path}"

    def emit(session: Session) -> None:
        if options.redact:
            redact_session(session)
        tally.add(session)
        creds.add_session(session)
        builder.add_session(index, jsonl.session_record(session, transcript=True), hint)
        for link in copies.session_done(session):
            builder.add_sent_copy(index, link)

    status, warnings = feed_capture(path, pipeline, err, emit, progress=options.progress)
    size, sha256 = file_digest(path)
    item = ReportInput(
        name=path,
        size=size,
        sha256=sha256,
        summary=jsonl.summary_record(summarise(tally, pipeline, warnings)),
        credentials=[credential_record(c) for c in creds.rows()],
        status=_WHOLE if status is not ExitStatus.TRUNCATED else "truncated or corrupt part-way",
    )
    return item, warnings, tally.sessions


def _write_atomically(target: Path, text: str) -> None:
    """Write to a temporary file beside `target`, then rename: never a half-written report."""
    folder = target.parent if str(target.parent) else Path(".")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = None
    except OSError as error:
        raise OutputError(f"{target}: cannot write the report: {error.strerror or error}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
