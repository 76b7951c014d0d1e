"""What every runner does with a finished session, in one order: redact, export, count, show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsniff.analysis.summary import Summary
from mailsniff.export.redact import redact_session
from mailsniff.model import Session

if TYPE_CHECKING:  # the sinks a runner asked for are loaded by that runner, only then
    from mailsniff.analysis.credentials import CredentialTable
    from mailsniff.export.exporter import Exporter
    from mailsniff.export.zeek import ZeekLogs

__all__ = ["SinkChain"]


@dataclass(slots=True)
class SinkChain:
    """Passes each finished session through the sinks a command asked for.

    Redaction comes first, so that nothing after it (files, tables, output) sees a secret.
    """

    redact: bool = False
    exporter: Exporter | None = None
    logs: ZeekLogs | None = None
    credentials: CredentialTable | None = None
    summary: Summary | None = None
    show: Callable[[Session], None] | None = None

    def __call__(self, session: Session) -> None:
        if self.redact:
            redact_session(session)
        if self.exporter is not None:
            self.exporter.session_done(session)
        if self.logs is not None:
            self.logs.session_done(session)
        if self.credentials is not None:
            self.credentials.add_session(session)
        if self.summary is not None:
            self.summary.add(session)
        if self.show is not None:
            self.show(session)
