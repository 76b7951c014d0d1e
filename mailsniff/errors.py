"""Errors that reach the user as one line and an exit status."""

from __future__ import annotations

from mailsniff.status import ExitStatus

__all__ = [
    "MailsniffError",
    "InputError",
    "NotACaptureError",
    "UnsupportedLinkTypeError",
    "TruncatedCaptureError",
    "UsageError",
    "OutputError",
]


class MailsniffError(Exception):
    """Base of every error mailsniff reports to the user (never a traceback)."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(MailsniffError):
    """The command line is wrong."""

    exit_status = ExitStatus.USAGE


class OutputError(MailsniffError):
    """Standard output could not be written (closed, /dev/full, an I/O error)."""

    exit_status = ExitStatus.WRITE_FAILED


class InputError(MailsniffError):
    """The input cannot be read at all (missing, unreadable, empty)."""

    exit_status = ExitStatus.INPUT_ERROR


class NotACaptureError(InputError):
    """The input is not a pcap or pcapng file (bad magic)."""


class UnsupportedLinkTypeError(InputError):
    """The capture uses a link type mailsniff does not decode."""

    def __init__(self, linktype: int, *, name: str | None = None) -> None:
        label = f"{linktype} ({name})" if name else str(linktype)
        super().__init__(
            f"unsupported link type {label}",
            hint="supported: Ethernet (1), raw IP (101, 228, 229, 12, 14), "
            "Linux cooked SLL (113) and SLL2 (276), BSD loopback NULL (0) and LOOP (108)",
        )
        self.linktype = linktype


class TruncatedCaptureError(MailsniffError):
    """The capture ends in the middle of a record or has a corrupt record part-way.

    Raised by a capture reader *after* it has yielded every good record before the damage;
    the pipeline flushes what it has, reports, then exits with TRUNCATED.
    """

    exit_status = ExitStatus.TRUNCATED

    def __init__(self, message: str, *, records_read: int, offset: int) -> None:
        super().__init__(message)
        self.records_read = records_read
        self.offset = offset
