"""Console views of live capture: the open-sessions table, streamed dialogue lines, the summary.

`mailsniff.commands.live` runs the capture; these functions only draw the records handed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mailsniff.analysis.summary import Summary
from mailsniff.model import Session, TranscriptLine
from mailsniff.render.text import format_size, safe_text, shorten

__all__ = ["open_sessions_view", "summary_panel", "transcript_line"]

#: Open sessions shown in the live view (the most recent).
_VIEW_ROWS = 20
_VIEW_COLUMNS = (
    ("id", 3),
    ("client", 0),
    ("server", 0),
    ("proto", 5),
    ("state", 5),
    ("user", 0),
    ("MAIL FROM", 0),
    ("rcpts", 0),
    ("bytes", 7),
)


def _state(s: Session) -> str:
    if s.implicit_tls:
        return "TLS (implicit)"
    if s.tls:
        return "TLS"
    if s.exchanges:
        return s.exchanges[-1].command
    return "greeting" if s.banner else "connected"


def open_sessions_view(
    sessions: Sequence[Session], flow_bytes: dict[int, int], captured: int, width: int = 120
) -> Table:
    table = Table(
        title=f"open sessions: {len(sessions)}   packets: {captured}",
        title_justify="left",
        expand=False,
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    # (name, width it never goes under): ids, protocols, states and sizes stay readable; the
    # five columns of addresses share what is left of the terminal's width.
    wide = max(6, min(32, (width - 2 * len(_VIEW_COLUMNS) - 28) // 5))
    for name, least in _VIEW_COLUMNS:
        table.add_column(
            name,
            overflow="ellipsis",
            no_wrap=True,
            min_width=least or None,
            max_width=None if least else wide,
            justify="right" if name in ("id", "bytes") else "left",
        )
    for s in sessions[-_VIEW_ROWS:]:
        user = next((a.username for a in reversed(s.auth) if a.username), None)
        last = s.transactions[-1] if s.transactions else None
        rcpts = [r.address for r in last.rcpts] if last else []
        table.add_row(
            str(s.id),
            f"{s.client.ip}:{s.client.port}",
            f"{s.server.ip}:{s.server.port}",
            str(s.protocol),
            _state(s),
            Text(safe_text(shorten(user or "", 32))),
            Text(safe_text(shorten(last.mail_from, 32)) if last else ""),
            Text(f"{len(rcpts)}: " + safe_text(shorten(", ".join(rcpts), 64)) if rcpts else ""),
            format_size(flow_bytes.get(s.id, 0)),
        )
    return table


def transcript_line(session_id: int, line: TranscriptLine) -> Text:
    """One dialogue line as --transcript streams it: `#7 C: MAIL FROM:<a@b>  [note]` (`C*`/`S*`
    for a line read from decrypted TLS)."""
    arrow = "C" if line.direction.value == "client" else "S"
    arrow += "*" if line.decrypted else ":"  # *: read from decrypted TLS
    text = Text(f"#{session_id} {arrow} ", style="dim")
    text.append(safe_text(line.text))
    if line.note:
        text.append(f"  [{safe_text(line.note)}]", style="dim")
    return text


def summary_panel(tally: Summary, live: dict[str, Any]) -> RenderableType:
    """The end-of-capture summary: the counts, and what the capture itself reports."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    protocols = ", ".join(f"{p} {n}" for p, n in sorted(tally.by_protocol.items()))
    grid.add_row("interface", Text(f"{live['interface']}  (filter: {live['filter']})"))
    grid.add_row("stopped", Text(str(live["stopped"])))
    grid.add_row("packets", Text(str(live["captured"])))
    grid.add_row("sessions", Text(f"{tally.sessions}" + (f"  ({protocols})" if protocols else "")))
    grid.add_row("incomplete", Text(str(tally.incomplete)))
    grid.add_row("messages", Text(str(tally.messages)))
    grid.add_row("credentials", Text(str(tally.credentials)))
    grid.add_row("bcc recipients", Text(str(tally.bcc_recipients)))
    grid.add_row("dropped by kernel", Text(str(live["kernel_dropped"])))
    grid.add_row("dropped by mailsniff", Text(str(live["mailsniff_dropped"])))
    grid.add_row("analysis behind by", Text(f"{format_size(live['spill_peak'])} at most"))
    return Panel(grid, title=Text("Summary", style="bold"), title_align="left")
