"""Command line: parse options, run the pipeline, hand the result to a renderer, map errors."""

from __future__ import annotations

import ipaddress
import sys
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from mailsniff import __version__
from mailsniff.errors import MailsniffError, UsageError
from mailsniff.model import Protocol
from mailsniff.reading import ReadOptions, ReadResult, read_capture
from mailsniff.status import ExitStatus

__all__ = ["app", "main"]

app = typer.Typer(
    name="mailsniff",
    help="Packet-level analyzer for SMTP and POP3: reassembles mail dialogues from captures, "
    "decodes AUTH and RFC 2047 headers, and puts each message's envelope next to its headers.",
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class ProtocolChoice(StrEnum):
    smtp = "smtp"
    pop3 = "pop3"


class _Stdout(Console):
    """stdout console: a closed pipe (`| head`) ends the program quietly with status 0."""

    def on_broken_pipe(self) -> None:
        _quiet_broken_pipe()


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: MailsniffError) -> NoReturn:
    message = Text("mailsniff: error: ", style="bold red")
    message.append(error.message)
    if error.hint:
        message.append(f" ({error.hint})")
    _stderr().print(message)
    raise typer.Exit(int(error.exit_status))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mailsniff {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """mailsniff: see what a mail client really sent."""


def _hosts(values: list[str] | None) -> frozenset[str] | None:
    if not values:
        return None
    out = set()
    for value in values:
        try:
            out.add(str(ipaddress.ip_address(value)))
        except ValueError:
            raise UsageError(f"--host: not an IP address: {value!r}") from None
    return frozenset(out)


@app.command()
def read(
    capture: Annotated[
        str, typer.Argument(help="pcap or pcapng file (optionally gzip-compressed); - for stdin.")
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one record per session, then a summary.")
    ] = False,
    transcript: Annotated[
        bool,
        typer.Option(
            "--transcript", "-t", help="Print whole dialogues with decoded base64 beside each line."
        ),
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Only the overview table and the summary.")
    ] = False,
    session_ids: Annotated[
        list[int] | None,
        typer.Option("--session", "-s", help="Only the session(s) with this ID (repeatable)."),
    ] = None,
    protocol: Annotated[
        ProtocolChoice | None, typer.Option("--protocol", "-p", help="Only this protocol.")
    ] = None,
    hosts: Annotated[
        list[str] | None,
        typer.Option("--host", help="Only sessions with this IP at either end (repeatable)."),
    ] = None,
    ports: Annotated[
        list[int] | None,
        typer.Option("--port", help="Only sessions with this TCP port at either end (repeatable)."),
    ] = None,
    progress: Annotated[
        bool, typer.Option(help="Progress bar on stderr (only when stderr is a terminal).")
    ] = True,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
) -> None:
    """Read a capture and explain the SMTP and POP3 dialogues it carried."""
    try:
        options = ReadOptions(
            path=capture,
            protocols=frozenset({Protocol(protocol.value)}) if protocol else None,
            hosts=_hosts(hosts),
            ports=frozenset(ports) if ports else None,
            session_ids=frozenset(session_ids) if session_ids else None,
            json=json_output,
            transcript=transcript,
            summary_only=summary,
            progress=progress,
        )
        out = _Stdout(highlight=False, soft_wrap=False)
        result: ReadResult = read_capture(options, out, _stderr())
    except MailsniffError as error:
        if debug:
            raise
        _fail(error)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except Exception as error:  # a bug in mailsniff: say so in one line, not a traceback
        if debug:
            raise
        _stderr().print(
            Text(f"mailsniff: internal error: {type(error).__name__}: {error} ", style="bold red")
            + Text("(run with --debug for the traceback; please report it)")
        )
        raise typer.Exit(int(ExitStatus.ERROR)) from None
    if result.warning is not None:
        _stderr().print(Text("mailsniff: warning: ", style="bold yellow") + Text(result.warning))
    raise typer.Exit(int(result.status))


def _port_list(values: list[str] | None) -> tuple[int, ...] | None:
    if not values:
        return None
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            try:
                out.append(int(part.strip()))
            except ValueError:
                raise UsageError(f"--ports: not a TCP port: {part.strip()!r}") from None
    return tuple(out)


@app.command()
def live(
    iface: Annotated[
        str | None,
        typer.Option("-i", "--interface", help="Interface to capture on (default: the system's)."),
    ] = None,
    ports: Annotated[
        list[str] | None,
        typer.Option(
            "--ports",
            help="TCP ports to capture, comma-separated or repeated "
            "(default: 25,587,2525,110,465,995,993).",
        ),
    ] = None,
    bpf: Annotated[
        str | None, typer.Option("-f", "--filter", help="BPF capture filter (tcpdump syntax).")
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="JSON Lines: one record per finished session, then a summary."),
    ] = False,
    transcript: Annotated[
        bool, typer.Option("--transcript", "-t", help="Show dialogue lines as they arrive.")
    ] = False,
    write: Annotated[
        str | None,
        typer.Option("-w", "--write", help="Also write every captured packet to this pcap."),
    ] = None,
    count: Annotated[
        int | None, typer.Option("-c", "--count", help="Stop after this many packets.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
) -> None:
    """Capture on an interface and explain SMTP and POP3 dialogues as they happen."""
    from mailsniff.live import LiveOptions, run_live

    try:
        options = LiveOptions(
            iface=iface,
            ports=_port_list(ports),
            bpf=bpf,
            json=json_output,
            transcript=transcript,
            write=write,
            count=count,
            duration=duration,
        )
        result = run_live(options, _Stdout(highlight=False, soft_wrap=False), _stderr())
    except MailsniffError as error:
        if debug:
            raise
        _fail(error)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except Exception as error:  # a bug in mailsniff: say so in one line, not a traceback
        if debug:
            raise
        _stderr().print(
            Text(f"mailsniff: internal error: {type(error).__name__}: {error} ", style="bold red")
            + Text("(run with --debug for the traceback; please report it)")
        )
        raise typer.Exit(int(ExitStatus.ERROR)) from None
    raise typer.Exit(int(result.status))


def _quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (`| head`): stop quietly, as Unix tools do."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(int(ExitStatus.SUCCESS))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        _stderr().print(Text("mailsniff: interrupted", style="bold red"))
        sys.exit(int(ExitStatus.INTERRUPTED))
