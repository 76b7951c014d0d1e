"""Exit statuses: the only place exit numbers are defined."""

from enum import IntEnum, unique

__all__ = ["ExitStatus"]


@unique
class ExitStatus(IntEnum):
    """Process exit codes, documented in README.md and docs/cli.md."""

    #: The capture was read to its end (gaps inside streams are reported in the output).
    SUCCESS = 0
    #: Unexpected internal error (a bug in mailsniff).
    ERROR = 1
    #: The command line was wrong (unknown option, bad filter syntax).
    USAGE = 2
    #: The input could not be read at all (missing file, not a capture, unsupported link type).
    INPUT_ERROR = 3
    #: The capture is truncated or corrupt part-way; everything before that point was reported.
    TRUNCATED = 4
    #: `live`: no permission to open a packet socket (run as root or give CAP_NET_RAW).
    NO_PERMISSION = 5
    #: `send`/`pop`/`mx`: the server could not be reached or the dialogue broke off
    #: (DNS failure, connection refused, timeout, TLS failure, connection closed).
    NETWORK = 6
    #: `send`/`pop`: the server refused (4xx/5xx or -ERR): authentication failed, the sender
    #: or a recipient was rejected, the message was not accepted.
    REJECTED = 7
    #: An output could not be written: --extract DIR or --mbox FILE (disk full, permission,
    #: file-size limit), or standard output (closed, /dev/full). One line says which.
    WRITE_FAILED = 8
    #: --extract: something already in DIR was in the way (a link, FIFO, device, or a file
    #: whose content does not match its name): replaced or skipped, a warning says which.
    EXPORT_REFUSED = 9
    #: Interrupted with Ctrl-C.
    INTERRUPTED = 130
    #: Stopped by SIGTERM (temporary files removed, as with Ctrl-C).
    TERMINATED = 143
