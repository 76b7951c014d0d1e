"""Standard output for the record streams (--json): a failed write never stops the run.

When the reader goes away (`| head -1`) the run goes on quietly to its end, so every --extract
and --mbox export is complete; any other failure (stdout closed, /dev/full, an I/O error) is
reported once the run has ended (`check`), as one line and exit status 8.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from mailsniff.errors import OutputError

if TYPE_CHECKING:
    from mailsniff.consoles import AnyConsole

__all__ = ["Stdout", "fix_closed_standard_streams"]

#: Set by `fix_closed_standard_streams`: stdout was closed when mailsniff started (`>&-`).
_closed_at_start = False


def fix_closed_standard_streams() -> None:
    """Put /dev/null on closed descriptors 0-2 (`<&-`, `>&-`), so no file mailsniff opens later
    becomes one of them; sys.stdin stays None (reading `-` then says stdin is closed)."""
    global _closed_at_start
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if fd == 1:
                _closed_at_start = True
                sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            elif fd == 2:
                sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


def _discard_stdout() -> None:
    """Send whatever is still buffered for stdout to /dev/null, so exiting flushes quietly."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    finally:
        os.close(null)


class Stdout:
    """Writes lines to the output (sys.stdout unless a console is given: its stream, so a command
    run in-process writes where it was told); remembers instead of raising when it cannot."""

    __slots__ = ("gone", "error", "_console")

    def __init__(self, console: AnyConsole | None = None) -> None:
        self._console = console
        self.gone = False  # the reader closed the pipe: quiet, not an error
        self.error: str | None = "it is closed" if _closed_at_start else None

    def write(self, text: str) -> None:
        self._put(text, None)

    def write_bytes(self, data: bytes) -> None:
        """`write` of text already encoded as UTF-8 (the lines --jobs workers make): to the
        stream's binary buffer when it has one, after any text written before."""
        self._put("", data)

    def _put(self, text: str, data: bytes | None) -> None:
        if self.gone or self.error is not None:
            return
        stream = self._console.file if self._console is not None else sys.stdout
        try:
            if data is not None:
                buffer = getattr(stream, "buffer", None)
                if buffer is not None:
                    stream.flush()
                    buffer.write(data)
                    buffer.flush()
                    return
                text = data.decode("utf-8")
            stream.write(text)
            stream.flush()
        except OSError as error:
            self.failed(error)

    def failed(self, error: OSError) -> None:
        """A write to stdout failed: the reader gone (`| head`, a closed pipe) is quiet; any
        other failure is remembered. The rest is discarded."""
        if isinstance(error, BrokenPipeError):
            self.gone = True
        elif self.error is None:
            self.error = error.strerror or str(error)
        _discard_stdout()

    def check(self) -> None:
        """Raises OutputError when something could not be written to stdout."""
        if self.error is not None:
            raise OutputError(f"cannot write to standard output: {self.error}")
