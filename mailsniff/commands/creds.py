"""`mailsniff creds FILE`: every credential in a capture, one row per distinct credential."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console

from mailsniff.commands.read import feed_capture
from mailsniff.export.chain import SinkChain
from mailsniff.pipeline import Pipeline
from mailsniff.render.creds import CredentialTable, render_credentials
from mailsniff.status import ExitStatus
from mailsniff.stdout import Stdout

__all__ = ["CredsOptions", "CredsResult", "read_credentials"]


@dataclass(slots=True, frozen=True, kw_only=True)
class CredsOptions:
    path: str
    json: bool = False
    redact: bool = False
    progress: bool = True


@dataclass(slots=True)
class CredsResult:
    status: ExitStatus
    warning: str | None
    credentials: int


def read_credentials(options: CredsOptions, out: Console, err: Console) -> CredsResult:
    """`mailsniff creds FILE`: read the capture, print one row per distinct credential."""
    table = CredentialTable()
    emit = SinkChain(redact=options.redact, credentials=table)
    status, warnings = feed_capture(options.path, Pipeline(), err, emit, progress=options.progress)
    stdout = Stdout(out)
    count = 0
    try:
        count = render_credentials(out, table.rows(), json=options.json)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): quiet, as for read
    except OSError as error:
        stdout.failed(error)
    stdout.check()
    warning = "; ".join(warnings) if status is ExitStatus.TRUNCATED else None
    return CredsResult(status=status, warning=warning, credentials=count)
