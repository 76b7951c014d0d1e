"""The rich consoles of standard output and standard error, made when first used.

`read --json` writes its records through `stdout.Stdout` and needs a console only for a
warning, an error or a progress bar on a terminal. Importing rich is about 16 ms, a tenth of
mailsniff's start-up, and `read --jobs N` pays its start-up before the workers fork: `read`
hands its work `LazyConsole`s, which import rich and make the console on first use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["AnyConsole", "LazyConsole", "real_console", "say", "warn"]


class LazyConsole:
    """A rich Console made by `make` when something needs it. Until then `file` is the
    standard stream it will write to (what a Console made without a file writes to) and
    `is_terminal` is answered without it where rich's answer is plainly False."""

    __slots__ = ("_make", "_console", "_stderr")

    def __init__(self, make: Callable[[], Console], *, stderr: bool = False) -> None:
        self._make = make
        self._console: Console | None = None
        self._stderr = stderr

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = self._make()
        return self._console

    @property
    def file(self) -> IO[str]:
        if self._console is not None:
            return self._console.file
        return sys.stderr if self._stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        if self._console is None and not _may_be_terminal(self.file):
            return False
        return self.console.is_terminal

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


#: What commands take for their output: a console, or one made on first use.
AnyConsole: TypeAlias = "Console | LazyConsole"


def real_console(console: AnyConsole) -> Console:
    """The Console itself (made now if it is lazy): for renderers and progress bars."""
    return console.console if isinstance(console, LazyConsole) else console


def say(console: AnyConsole, label: str, style: str, text: str = "") -> None:
    """One line: the label styled ("mailsniff: warning: "), then `text` as it is."""
    from rich.text import Text

    console.print(Text(label, style=style) + Text(text))


def warn(console: AnyConsole, text: str) -> None:
    """`mailsniff: warning: <text>` (the text as given: escape captured text first)."""
    say(console, "mailsniff: warning: ", "bold yellow", text)


def _may_be_terminal(stream: IO[str]) -> bool:
    """False only where rich's `Console.is_terminal` is False as well: neither TTY_COMPATIBLE
    nor FORCE_COLOR in the environment (each can make a console a terminal without a tty) and
    a stream that is not a tty."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is not None and bool(isatty())
    except ValueError:  # closed
        return False
