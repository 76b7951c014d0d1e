"""Command line: parse options, run the pipeline, hand the result to a renderer, map errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import typer.core
from typer.main import get_command_name

from mailsniff import __version__, _compiled
from mailsniff.analysis.select import parse_ports
from mailsniff.capture.multi import expand_inputs
from mailsniff.commands.options import (
    NO_FILTERS,
    Filters,
    Plain,
    exclusive,
    plain_output,
    with_filters,
)
from mailsniff.commands.read import ReadOptions, ReadResult, read_capture
from mailsniff.consoles import LazyConsole, say, warn
from mailsniff.errors import MailsniffError, UsageError
from mailsniff.render.text import safe_text
from mailsniff.status import ExitStatus

if TYPE_CHECKING:  # rich is imported when a console is first needed (mailsniff.consoles)
    from rich.console import Console

__all__ = ["app", "main"]

T = TypeVar("T")


class _Group(typer.core.TyperGroup):
    """The command group: help tidied and examples added as it is built (commands/manual.py),
    plain option values coerced without pydantic (commands/coercion.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from mailsniff.commands.coercion import plain_coercion
        from mailsniff.commands.manual import tidy_help

        super().__init__(*args, **kwargs)
        tidy_help(self)
        plain_coercion(self)
        for command in self.commands.values():
            tidy_help(command)
            plain_coercion(command)  # plain values without importing pydantic


def _typer() -> typer.Typer:
    return typer.Typer(
        name="mailsniff",
        cls=_Group,
        help="Packet-level analyzer for SMTP and POP3: reassembles mail dialogues from captures, "
        "decodes AUTH and RFC 2047 headers, and puts each message's envelope next to its headers.",
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _typer()


def _app_for(args: list[str]) -> typer.Typer:
    """`app` with only the command `args` name first, when they name one: the only command
    that will run. Typer reads each command's whole signature as it builds the group (20 ms for
    the nine, at every start). Anything else (help, --version, a misspelt command, shell
    completion) gets the whole app."""
    if args:
        for info in app.registered_commands:
            if info.callback is not None and get_command_name(info.callback.__name__) == args[0]:
                one = _typer()
                one.registered_callback = app.registered_callback
                one.registered_commands = [info]
                return one
    return app


def _stdout() -> Console:
    """stdout console: a closed pipe (`| head`) ends the program quietly with status 0."""
    from rich.console import Console

    class _Stdout(Console):
        def on_broken_pipe(self) -> None:
            _quiet_broken_pipe()

    return _Stdout(highlight=False, soft_wrap=False)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _warn(text: str) -> None:
    warn(_stderr(), safe_text(text))


def _fail(error: MailsniffError) -> NoReturn:
    # Messages quote servers' replies and capture file names: escaped like all captured text.
    hint = f" ({safe_text(error.hint)})" if error.hint else ""
    say(_stderr(), "mailsniff: error: ", "bold red", safe_text(error.message) + hint)
    raise typer.Exit(int(error.exit_status))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mailsniff {__version__} ({_compiled.STATUS})")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """mailsniff: see what a mail client really sent."""


# Options several commands share (one definition each, so their flags and help agree).
_DEBUG_OPTION = typer.Option("--debug", help="Show tracebacks of internal errors.")
_TIMEOUT_OPTION = typer.Option("--timeout", help="Seconds allowed for each step.", min=0.1)
_REDACT_OPTION = typer.Option("--redact", help="Mask the password (and its base64) in all output.")
_REDACT_ALL_OPTION = typer.Option(
    "--redact", help="Mask passwords, tokens and digests in all output."
)
_PROGRESS_OPTION = typer.Option(help="Progress bar on stderr (only when stderr is a terminal).")
_EXTRACT_OPTION = typer.Option(
    "--extract",
    metavar="DIR",
    help="Write each message as <sha256>.eml, attachments decoded, and manifest.jsonl.",
)
_KEYLOG_OPTION = typer.Option(
    "--keylog",
    metavar="FILE",
    envvar="SSLKEYLOGFILE",
    help="TLS key log (NSS format, as SSLKEYLOGFILE writes): decrypt STARTTLS and implicit-TLS "
    "sessions (SMTPS, POP3S, IMAPS) with it. Default: the SSLKEYLOGFILE environment variable.",
)
_WRITE_KEYLOG_OPTION = typer.Option(
    "--keylog",
    metavar="FILE",
    help="Append this connection's TLS secrets to FILE (NSS key log format), so that "
    "`read CAPTURE --keylog FILE` decrypts it.",
)
_MBOX_OPTION = typer.Option(
    "--mbox", metavar="FILE", help="Append every message to this mbox file."
)


@app.command()
@with_filters
def read(
    capture: Annotated[
        list[str] | None,
        typer.Argument(
            help="pcap or pcapng file (optionally gzip-compressed); - for stdin. Several files, "
            "a directory or a glob are read as one capture (rotated files continue each other).",
            metavar="CAPTURE",
            show_default=False,
        ),
    ] = None,
    read_file: Annotated[
        str | None,
        typer.Option("-r", metavar="FILE", help="The capture, as tcpdump -r / tshark -r."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one record per session, then a summary.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes, connections split between them (same output for any N). "
            "Default: one per core for inputs of 32 MB or more, else 1. --extract/--mbox use 1.",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            metavar="ADDRESS",
            help="Run the --jobs shards on this Dask cluster (tcp://host:8786; the workers read "
            "the captures from shared storage). Shards: --jobs, else the cluster's threads.",
            show_default=False,
        ),
    ] = None,
    transcript: Annotated[
        bool,
        typer.Option(
            "--transcript", "-t", help="Print whole dialogues with decoded base64 beside each line."
        ),
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Only the overview table and the summary.")
    ] = False,
    plain: Plain = None,
    session_ids: Annotated[
        list[int] | None,
        typer.Option("--session", "-s", help="Only the session(s) with this ID (repeatable)."),
    ] = None,
    filters: Filters = NO_FILTERS,  # --protocol, --host, --port, ... -f (with_filters)
    progress: Annotated[bool, _PROGRESS_OPTION] = True,
    extract: Annotated[str | None, _EXTRACT_OPTION] = None,
    mbox: Annotated[str | None, _MBOX_OPTION] = None,
    redact: Annotated[bool, _REDACT_ALL_OPTION] = False,
    zeek_logs: Annotated[
        str | None,
        typer.Option(
            "--zeek-logs", metavar="DIR", help="Write Zeek-style smtp.log, pop3.log, files.log."
        ),
    ] = None,
    zeek_json: Annotated[
        bool, typer.Option("--zeek-json", help="With --zeek-logs: Zeek's JSON flavour.")
    ] = False,
    keylog: Annotated[str | None, _KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """Read a capture and explain the SMTP and POP3 dialogues it carried."""

    def action() -> ReadResult:
        if bool(capture) == (read_file is not None):
            raise UsageError("give the capture once: mailsniff read FILE..., or -r FILE")
        if zeek_json and zeek_logs is None:
            raise UsageError("--zeek-json needs --zeek-logs DIR")
        exclusive(**{"--summary": summary, "--json": json_output})
        exclusive(**{"--summary": summary, "--transcript": transcript})
        exclusive(**{"--json": json_output, "--plain": plain})
        selection = filters.selection()
        paths = expand_inputs(capture or [str(read_file)])
        options = ReadOptions(
            path=paths[0],
            paths=tuple(paths),
            jobs=jobs,
            zeek_logs=zeek_logs,
            zeek_json=zeek_json,
            scheduler=scheduler,
            selection=selection,
            session_ids=_session_ids(session_ids),
            json=json_output,
            transcript=transcript,
            summary_only=summary,
            plain=not json_output and plain_output(plain),
            progress=progress,
            extract=extract,
            mbox=mbox,
            redact=redact,
            keylog=keylog or None,
        )
        # Consoles made on first use: `read --json` writes its lines without one.
        return read_capture(options, LazyConsole(_stdout), LazyConsole(_stderr, stderr=True))

    result = _guarded(debug, action)
    if result.warning is not None:
        _warn(result.warning)
    raise typer.Exit(int(result.status))


@app.command()
@with_filters
def creds(
    capture: Annotated[
        str, typer.Argument(help="pcap or pcapng file (optionally gzip-compressed); - for stdin.")
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one record per credential.")
    ] = False,
    plain: Plain = None,
    filters: Filters = NO_FILTERS,  # --protocol, --host, --port, ... -f (with_filters)
    redact: Annotated[bool, _REDACT_ALL_OPTION] = False,
    progress: Annotated[bool, _PROGRESS_OPTION] = True,
    keylog: Annotated[str | None, _KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """List every credential in a capture, deduplicated, with whether it worked."""
    from mailsniff.commands.creds import CredsOptions, CredsResult, read_credentials

    def action() -> CredsResult:
        exclusive(**{"--json": json_output, "--plain": plain})
        options = CredsOptions(
            path=capture,
            json=json_output,
            plain=not json_output and plain_output(plain),
            selection=filters.selection(),
            redact=redact,
            progress=progress,
            keylog=keylog or None,
        )
        return read_credentials(options, _stdout(), _stderr())

    result = _guarded(debug, action)
    if result.filtered:
        say(_stderr(), f"mailsniff: {result.filtered} sessions filtered out", "dim")
    if result.warning is not None:
        _warn(result.warning)
    raise typer.Exit(int(result.status))


@app.command()
@with_filters
def report(
    captures: Annotated[
        list[str],
        typer.Argument(metavar="CAPTURE", help="pcap or pcapng files (optionally gzip)."),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE", help="The HTML file to write.")
    ],
    filters: Filters = NO_FILTERS,  # --protocol, --host, --port, ... -f (with_filters)
    redact: Annotated[bool, _REDACT_ALL_OPTION] = False,
    progress: Annotated[bool, _PROGRESS_OPTION] = True,
    keylog: Annotated[str | None, _KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """Write one self-contained HTML report of the captures (docs/report.md)."""
    import shlex

    from mailsniff.report import ReportOptions, ReportResult, write_report

    def action() -> ReportResult:
        line = shlex.join(["mailsniff", *sys.argv[1:]])
        paths = tuple(captures)
        options = ReportOptions(
            paths=paths,
            output=output,
            command_line=line,
            selection=filters.selection(),
            redact=redact,
            progress=progress,
            keylog=keylog or None,
        )
        return write_report(options, _stderr())

    result = _guarded(debug, action)
    if result.warning is not None:
        _warn(result.warning)
    raise typer.Exit(int(result.status))


def _session_ids(values: list[int] | None) -> frozenset[int] | None:
    if not values:
        return None
    for value in values:
        if value < 1:
            raise UsageError(f"--session: session IDs start at 1, not {value}")
    return frozenset(values)


@app.command()
def live(
    iface: Annotated[
        str | None,
        typer.Option(
            "-i",
            "--interface",
            metavar="IFACE",
            help="Interface to capture on (default: the system's).",
        ),
    ] = None,
    ports: Annotated[
        list[str] | None,
        typer.Option(
            "--ports",
            metavar="PORTS",
            help="TCP ports to capture, comma-separated or repeated "
            "(default: 25,587,2525,110,465,995,993).",
        ),
    ] = None,
    bpf: Annotated[
        str | None,
        typer.Option("-f", "--filter", metavar="EXPR", help="BPF capture filter (tcpdump syntax)."),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="JSON Lines: one record per finished session, then a summary."),
    ] = False,
    plain: Plain = None,
    transcript: Annotated[
        bool, typer.Option("--transcript", "-t", help="Show dialogue lines as they arrive.")
    ] = False,
    write: Annotated[
        str | None,
        typer.Option(
            "-w", "--write", metavar="FILE", help="Also write every captured packet to this pcap."
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("-c", "--count", help="Stop after this many packets.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    buffer_size: Annotated[
        str | None,
        typer.Option(
            "-B",
            "--buffer-size",
            metavar="SIZE",
            help="Kernel capture ring: KiB as tcpdump's -B, or a size like 256M (default 64M).",
        ),
    ] = None,
    live_jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Analysis processes, connections split between them as in read (capture has "
            "a process of its own). With more than 1, no live view of open sessions; "
            "--transcript/--extract/--mbox use 1.",
        ),
    ] = 1,
    spill_size: Annotated[
        str | None,
        typer.Option(
            "--spill-size",
            metavar="SIZE",
            help="Captured packets kept on disk while analysis catches up: MiB, or e.g. 4G "
            "(default 2G); beyond it packets are dropped and counted.",
        ),
    ] = None,
    extract: Annotated[str | None, _EXTRACT_OPTION] = None,
    mbox: Annotated[str | None, _MBOX_OPTION] = None,
    creds: Annotated[
        bool, typer.Option("--creds", help="At the end, the table of every credential seen.")
    ] = False,
    redact: Annotated[bool, _REDACT_ALL_OPTION] = False,
    keylog: Annotated[str | None, _KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """Capture on an interface and explain SMTP and POP3 dialogues as they happen."""
    from mailsniff.capture.process import parse_spill_size
    from mailsniff.capture.ring import parse_buffer_size
    from mailsniff.commands.live import LiveOptions, LiveResult, run_live

    def action() -> LiveResult:
        exclusive(**{"--json": json_output, "--plain": plain})
        options = LiveOptions(
            buffer_size=None if buffer_size is None else parse_buffer_size(buffer_size),
            jobs=live_jobs,
            spill_size=None if spill_size is None else parse_spill_size(spill_size),
            iface=iface,
            ports=parse_ports(ports, "--ports"),
            bpf=bpf,
            json=json_output,
            plain=not json_output and plain_output(plain),
            transcript=transcript,
            write=write,
            count=count,
            duration=duration,
            extract=extract,
            mbox=mbox,
            creds=creds,
            redact=redact,
            keylog=keylog or None,
        )
        return run_live(options, _stdout(), _stderr())

    result = _guarded(debug, action)
    raise typer.Exit(int(result.status))


def _guarded(debug: bool, action: Callable[[], T]) -> T:
    """Run a command's work; errors become one line on stderr and their exit status."""
    try:
        return action()
    except MailsniffError as error:
        if debug:
            raise
        _fail(error)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except Exception as error:  # a bug in mailsniff: say so in one line, not a traceback
        if debug:
            raise
        say(
            _stderr(),
            safe_text(f"mailsniff: internal error: {type(error).__name__}: {error} "),
            "bold red",
            "(run with --debug for the traceback; please report it)",
        )
        raise typer.Exit(int(ExitStatus.ERROR)) from None


def _quiet_broken_pipe() -> NoReturn:
    """The reader of our output went away (`| head`): stop quietly, as Unix tools do."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(int(ExitStatus.SUCCESS))


# --------------------------------------------------------------------------- send, mx, pop


class AuthChoice(StrEnum):
    LOGIN = "LOGIN"
    PLAIN = "PLAIN"
    CRAM_MD5 = "CRAM-MD5"


class PopChoice(StrEnum):
    stat = "stat"
    list = "list"
    top = "top"
    retr = "retr"
    dele = "dele"


def _active(debug: bool, call: Callable[[Console], None]) -> NoReturn:
    """Run a send/mx/pop action: its output on stdout, a failure as one line and its status."""
    _guarded(debug, lambda: call(_stdout()))
    raise typer.Exit(int(ExitStatus.SUCCESS))


def _password(password: str | None, needed: bool) -> str | None:
    if password is not None or not needed:
        return password
    if not sys.stdin.isatty():
        raise UsageError("a password is needed: --password, MAILSNIFF_PASSWORD, or a terminal")
    return str(typer.prompt("Password", hide_input=True))


@app.command()
def mx(
    domain: Annotated[str, typer.Argument(help="Mail domain to look up.")],
    resolver: Annotated[
        str | None, typer.Option("--resolver", metavar="IP[:PORT]", help="Ask this DNS server.")
    ] = None,
    timeout: Annotated[float, _TIMEOUT_OPTION] = 5.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one record for the domain.")
    ] = False,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """MX hosts of a domain by preference, with addresses (implicit MX when none)."""
    from mailsniff.commands.mx import run_mx

    _active(debug, lambda out: run_mx(domain, resolver, timeout, out, json=json_output))


@app.command()
def send(
    envelope_from: Annotated[
        str, typer.Option("--from", metavar="ADDR", help="Envelope sender (MAIL FROM).")
    ],
    to: Annotated[
        list[str] | None,
        typer.Option("--to", metavar="ADDRESS", help="To recipient (repeatable, comma lists)."),
    ] = None,
    cc: Annotated[
        list[str] | None,
        typer.Option("--cc", metavar="ADDRESS", help="Cc recipient (repeatable, comma lists)."),
    ] = None,
    bcc: Annotated[
        list[str] | None,
        typer.Option(
            "--bcc", metavar="ADDRESS", help="Bcc recipient: RCPT TO only, never in the message."
        ),
    ] = None,
    header_from: Annotated[
        str | None,
        typer.Option(
            "--header-from",
            metavar="ADDRESS",
            help="From header, when it differs from the envelope.",
        ),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Subject.")] = None,
    body: Annotated[str | None, typer.Option("--body", help="Body text.")] = None,
    body_file: Annotated[
        Path | None, typer.Option("--body-file", help="Body text from a UTF-8 file.")
    ] = None,
    attach: Annotated[
        list[Path] | None, typer.Option("--attach", help="Attach a file (repeatable).")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", metavar="HEADER", help="Extra header 'Name: value' (repeatable)."),
    ] = None,
    charset: Annotated[
        str,
        typer.Option(
            "--charset", metavar="CHARSET", help="Charset of RFC 2047 names/subject and body (GBK)."
        ),
    ] = "utf-8",
    helo: Annotated[
        str, typer.Option("--helo", metavar="NAME", help="Name given in EHLO/HELO.")
    ] = "localhost",
    server: Annotated[
        str | None,
        typer.Option("--server", metavar="HOST[:PORT]", help="Send here instead of by MX lookup."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port for MX delivery.")] = 25,
    resolver: Annotated[
        str | None,
        typer.Option("--resolver", metavar="IP[:PORT]", help="DNS server for MX lookups."),
    ] = None,
    auth: Annotated[AuthChoice | None, typer.Option("--auth", help="SASL mechanism.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="USER", help="AUTH user name.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", metavar="PASSWORD", envvar="MAILSNIFF_PASSWORD", help="AUTH password."
        ),
    ] = None,
    starttls: Annotated[bool, typer.Option("--starttls", help="STARTTLS before AUTH.")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="Implicit TLS (port 465).")] = False,
    tls_verify: Annotated[
        bool, typer.Option("--tls-verify", help="Check the server's certificate.")
    ] = False,
    pipelining: Annotated[
        bool, typer.Option(help="Use PIPELINING when the server offers it.")
    ] = True,
    timeout: Annotated[float, _TIMEOUT_OPTION] = 30.0,
    capture: Annotated[
        Path | None, typer.Option("--capture", metavar="FILE", help="Record the packets (pcap).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print envelope and message; do not connect.")
    ] = False,
    redact: Annotated[bool, _REDACT_OPTION] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="JSON Lines: one record per session, then the outcome."),
    ] = False,
    keylog: Annotated[str | None, _WRITE_KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """Send a message over SMTP, showing the dialogue, then each recipient's outcome."""
    from mailsniff.commands.send import build_send_request, run_send
    from mailsniff.send.client import SmtpOptions, TlsMode

    def call(out: Console) -> None:
        if starttls and tls:
            raise UsageError("give --starttls or --tls, not both")
        options = SmtpOptions(
            helo=helo,
            tls=TlsMode.IMPLICIT if tls else TlsMode.STARTTLS if starttls else TlsMode.NONE,
            tls_verify=tls_verify,
            auth=auth.value if auth else None,
            user=user,
            password=_password(password, auth is not None and not dry_run),
            timeout=timeout,
            pipelining=pipelining,
            keylog=keylog,
        )
        request = build_send_request(
            envelope_from=envelope_from,
            to=to,
            cc=cc,
            bcc=bcc,
            header_from=header_from,
            subject=subject,
            body=body,
            body_file=body_file,
            attach=attach,
            headers=header,
            charset=charset,
            options=options,
            server=server,
            mx_port=port,
            resolver=resolver,
            capture=capture,
            dry_run=dry_run,
            redact=redact,
            json=json_output,
        )
        run_send(request, out)

    _active(debug, call)


@app.command()
def pop(
    action: Annotated[PopChoice, typer.Argument(help="stat, list, top, retr or dele.")],
    number: Annotated[int | None, typer.Argument(help="Message number (top, retr, dele).")] = None,
    lines: Annotated[int, typer.Argument(help="top: body lines to fetch.")] = 0,
    server: Annotated[
        str | None, typer.Option("--server", metavar="HOST[:PORT]", help="POP3 server.")
    ] = None,
    user: Annotated[str, typer.Option("--user", metavar="USER", help="User name.")] = "",
    password: Annotated[
        str | None,
        typer.Option(
            "--password", metavar="PASSWORD", envvar="MAILSNIFF_PASSWORD", help="Password."
        ),
    ] = None,
    apop: Annotated[bool, typer.Option("--apop", help="APOP instead of USER/PASS.")] = False,
    stls: Annotated[bool, typer.Option("--stls", help="STLS before logging in.")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="Implicit TLS (port 995).")] = False,
    tls_verify: Annotated[
        bool, typer.Option("--tls-verify", help="Check the server's certificate.")
    ] = False,
    save: Annotated[
        Path | None, typer.Option("--save", metavar="FILE.eml", help="retr: save the message.")
    ] = None,
    timeout: Annotated[float, _TIMEOUT_OPTION] = 30.0,
    capture: Annotated[
        Path | None, typer.Option("--capture", metavar="FILE", help="Record the packets (pcap).")
    ] = None,
    redact: Annotated[bool, _REDACT_OPTION] = False,
    keylog: Annotated[str | None, _WRITE_KEYLOG_OPTION] = None,
    debug: Annotated[bool, _DEBUG_OPTION] = False,
) -> None:
    """Log in to a POP3 server and stat, list, top, retr or dele, showing the dialogue."""
    from mailsniff.commands.pop import run_pop
    from mailsniff.send.client import TlsMode
    from mailsniff.send.pop import PopAction, PopOptions

    def call(out: Console) -> None:
        if server is None or not user:
            raise UsageError("pop needs --server and --user")
        if stls and tls:
            raise UsageError("give --stls or --tls, not both")
        options = PopOptions(
            user=user,
            password=_password(password, True) or "",
            apop=apop,
            tls=TlsMode.IMPLICIT if tls else TlsMode.STARTTLS if stls else TlsMode.NONE,
            tls_verify=tls_verify,
            timeout=timeout,
            keylog=keylog,
        )
        run_pop(
            server,
            options,
            PopAction(action.value),
            out,
            number=number,
            lines=lines,
            save=save,
            capture=capture,
            redact=redact,
        )

    _active(debug, call)


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command()
def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", show_default=False)],
) -> None:
    """Print the shell completion script for mailsniff's commands and options."""
    from mailsniff.commands.manual import completion_script

    typer.echo(completion_script(shell.value))


@app.command()
def man() -> None:
    """Print the manual page (roff) made from the same definitions as --help."""
    from mailsniff.commands.manual import man_page

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    typer.echo(man_page(group), nl=False)


class _Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so temporary files are removed on the way out."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main() -> None:
    """Console-script entry point."""
    import os
    import signal

    from mailsniff.stdout import fix_closed_standard_streams

    fix_closed_standard_streams()
    signal.signal(signal.SIGTERM, _on_sigterm)
    if "_MAILSNIFF_COMPLETE" in os.environ:  # the shell asks for completions
        from mailsniff.commands.manual import enable_completion

        enable_completion()
    try:
        # One name in usage lines and for shell completion, however it was started.
        _app_for(sys.argv[1:])(prog_name="mailsniff", complete_var="_MAILSNIFF_COMPLETE")
    except KeyboardInterrupt:
        say(_stderr(), "mailsniff: interrupted", "bold red")
        sys.exit(int(ExitStatus.INTERRUPTED))
    except _Terminated:
        say(_stderr(), "mailsniff: terminated", "bold red")
        sys.exit(int(ExitStatus.TERMINATED))
