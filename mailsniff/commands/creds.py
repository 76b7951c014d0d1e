"""`mailsniff creds FILE`: every credential in a capture, one row per distinct credential."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from mailsniff.analysis.select import Selection
from mailsniff.commands.read import feed_capture
from mailsniff.export.chain import SinkChain
from mailsniff.pipeline import Pipeline
from mailsniff.render.creds import CredentialTable, render_credentials
from mailsniff.render.text import safe_text
from mailsniff.session.tls_layer import keylog_warning, open_keylog
from mailsniff.status import ExitStatus
from mailsniff.stdout import Stdout

__all__ = ["CredsOptions", "CredsResult", "read_credentials"]


@dataclass(slots=True, frozen=True, kw_only=True)
class CredsOptions:
    path: str
    json: bool = False
    plain: bool = False  # one tab-separated line per credential
    #: --host, --port, --address, ... (analysis/select.py)
    selection: Selection = field(default_factory=Selection)
    redact: bool = False
    progress: bool = True
    keylog: str | None = None  # --keylog FILE (TLS decryption)


@dataclass(slots=True)
class CredsResult:
    status: ExitStatus
    warning: str | None
    credentials: int
    filtered: int = 0  # sessions the filters left out


def read_credentials(options: CredsOptions, out: Console, err: Console) -> CredsResult:
    """`mailsniff creds FILE`: read the capture, print one row per distinct credential."""
    keylog = open_keylog(options.keylog) if options.keylog is not None else None
    if keylog is not None and (note := keylog_warning(keylog)) is not None:
        err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(safe_text(note)))
    table = CredentialTable()
    emit = SinkChain(redact=options.redact, credentials=table)
    pipeline = Pipeline(session_filter=options.selection, keylog=keylog)
    status, warnings = feed_capture(options.path, pipeline, err, emit, progress=options.progress)
    stdout = Stdout(out)
    count = 0
    try:
        count = render_credentials(out, table.rows(), json=options.json, plain=options.plain)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): quiet, as for read
    except OSError as error:
        stdout.failed(error)
    stdout.check()
    warning = "; ".join(warnings) if status is ExitStatus.TRUNCATED else None
    return CredsResult(
        status=status, warning=warning, credentials=count, filtered=pipeline.stats.filtered
    )
