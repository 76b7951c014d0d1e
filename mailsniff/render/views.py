"""Per-protocol choices of the console view, looked up by protocol name (generic by default).

A view only chooses what to show; the facts come from the session record and analysis. A
protocol without an entry here (a newly registered one) gets `GENERIC`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GENERIC", "ConsoleView", "register_view", "view_for"]


@dataclass(frozen=True, slots=True)
class ConsoleView:
    #: Show the `helo` row even when the client never said hello.
    helo_row: bool = False
    #: Show the command/reply table (SMTP shows its transactions instead).
    exchanges: bool = True


GENERIC = ConsoleView()
_VIEWS: dict[str, ConsoleView] = {
    "smtp": ConsoleView(helo_row=True, exchanges=False),
}


def register_view(protocol: str, view: ConsoleView) -> None:
    _VIEWS[protocol] = view


def view_for(protocol: str) -> ConsoleView:
    return _VIEWS.get(protocol, GENERIC)
