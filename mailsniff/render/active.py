"""Console views of the active commands (send, mx, pop): what they tried and what came of it.

The runners in `mailsniff.send` decide; these functions only draw the plain values handed in.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Column, Table
from rich.text import Text

from mailsniff.render.text import safe_text

__all__ = ["dry_run_grid", "listing_table", "mx_table", "outcome_table"]


def mx_table(domain: str, hosts: Sequence[tuple[int, str, str]]) -> Table:
    """A domain's MX hosts: (preference, host, its addresses or why there are none)."""
    table = Table(
        Column("pref", justify="right"),
        Column("host", overflow="fold"),
        Column("addresses", overflow="fold"),
        title=Text(f"MX {domain}", style="bold"),
        title_justify="left",
        box=box.SIMPLE,
    )
    for preference, host, addresses in hosts:
        table.add_row(str(preference), safe_text(host), safe_text(addresses))
    return table


def dry_run_grid(route: str, envelope_from: str, recipients: Sequence[tuple[str, str]]) -> Table:
    """What `send --dry-run` would do: the route, MAIL FROM, and each (RCPT TO, role)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("server", Text(safe_text(route)))
    grid.add_row("MAIL FROM", Text(safe_text(f"<{envelope_from}>")))
    for address, role in recipients:
        style = "bold magenta" if role == "bcc" else ""
        grid.add_row("RCPT TO", Text(safe_text(f"<{address}>  ({role})"), style=style))
    return grid


def outcome_table(rows: Sequence[tuple[str, str, str | None, str, str | None]]) -> Table:
    """What became of each recipient: (address, role, server, status, deciding reply)."""
    table = Table(
        Column("recipient", overflow="fold"),
        Column("as", no_wrap=True),
        Column("server", overflow="fold"),
        Column("outcome", no_wrap=True),
        Column("server reply", overflow="fold"),
        title=Text("Recipients", style="bold"),
        title_justify="left",
    )
    for address, role, server, status, reply in rows:
        style = "green" if status == "accepted" else "bold red"
        table.add_row(
            Text(safe_text(address)),
            Text(role),
            Text(safe_text(server or "-")),
            Text(status, style=style),
            Text(safe_text(reply or "-")),
        )
    return table


def listing_table(listing: Sequence[tuple[int, int]]) -> Table:
    """A POP3 LIST answer: (message number, octets)."""
    table = Table(Column("message", justify="right"), Column("octets", justify="right"))
    for n, size in listing:
        table.add_row(str(n), str(size))
    return table
