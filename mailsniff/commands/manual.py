"""The help, the man page and the shell completion, all made from the one command tree.

`tidy_help` runs on every command as the click group is built: option values are named by what
they hold (N, SECONDS, PATH, the choices) instead of Python types, flags show no type at all, and
each command's help ends with its examples (`EXAMPLES`). `man_page` writes the same definitions
as roff (docs/mailsniff.1 is its output, checked by a test); `completion_script` is click's own
completion for bash, zsh and fish, bound to the `mailsniff` command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _click as click
from typer.core import TyperGroup

from mailsniff import __version__

__all__ = ["EXAMPLES", "SHELLS", "completion_script", "enable_completion", "man_page", "tidy_help"]

#: Two or three examples per command, shown at the end of its --help and in the man page.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "read": (
        "mailsniff read capture.pcap --summary",
        "mailsniff read capture.pcap --address bob@example.com --finding bcc",
        "mailsniff read capture.pcap --host 10.0.0.0/8 --since 2024-05-01 -f 'tcp port 587' --json",
    ),
    "creds": (
        "mailsniff creds capture.pcap",
        "mailsniff creds capture.pcap --host 10.1.2.3 --json",
        "mailsniff creds capture.pcap --protocol imap,pop3 --redact",
    ),
    "report": (
        "mailsniff report capture.pcap -o report.html",
        "mailsniff report a.pcap b.pcap -o case.html --address cccc@163.com --redact",
    ),
    "live": (
        "mailsniff live -i eth0",
        "mailsniff live -i any --ports 25,587 --json | jq .",
        "mailsniff live -i eth0 -w mail.pcap --duration 600",
    ),
    "send": (
        "mailsniff send --from alice@example.com --to bob@example.net --subject hi --body hello",
        "mailsniff send --from a@example.com --to b@example.net --bcc c@example.org --dry-run",
        "mailsniff send --from a@example.com --to b@example.net --server 127.0.0.1:2525 "
        "--auth PLAIN --user a",
    ),
    "mx": (
        "mailsniff mx example.com",
        "mailsniff mx example.com --resolver 127.0.0.1:5353 --json",
    ),
    "pop": (
        "mailsniff pop stat --server pop.example.com --user alice",
        "mailsniff pop retr 3 --server 127.0.0.1:1110 --user alice --save message.eml",
    ),
    "completion": (
        "mailsniff completion bash > /etc/bash_completion.d/mailsniff",
        "mailsniff completion zsh > ~/.zfunc/_mailsniff",
        "mailsniff completion fish > ~/.config/fish/completions/mailsniff.fish",
    ),
    "man": (
        "mailsniff man | man -l -",
        "mailsniff man > /usr/local/share/man/man1/mailsniff.1",
    ),
}

SHELLS = ("bash", "zsh", "fish")


def _value_name(param: Any) -> str | None:
    """What a parameter's value is called in help: never a Python type name."""
    if param.param_type_name == "argument":
        return None  # the argument's own name says it
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar is not None:
        return str(param.metavar)
    annotation = param.type_descriptor.annotation
    if get_origin(annotation) is list:
        [annotation] = get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "|".join(str(member.value) for member in annotation)
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUM"
    if annotation is Path:
        return "PATH"
    return "TEXT"


def _tidy_param(param: Any) -> None:
    name = _value_name(param)
    if param.param_type_name == "option" and name is not None:
        param.metavar = name
    elif param.param_type_name == "argument" and param.metavar is None:
        param.metavar = str(param.name).upper()
    # typer shows `<type>` beside each parameter: show the value's name (or nothing).
    param.display_type_rich = lambda ctx, name=name: name


def each_parameter(command: click.Command, prepare: Callable[[click.Parameter], None]) -> None:
    """`prepare` every parameter of `command`, the help option too, which click makes only when
    the command line is parsed."""
    for param in command.params:
        prepare(param)
    made = command.get_help_option

    def help_option(ctx: click.Context) -> Any:
        option = made(ctx)
        if option is not None:
            prepare(option)
        return option

    command.get_help_option = help_option  # type: ignore[method-assign]


def tidy_help(command: click.Command) -> None:
    """Name every value by its meaning and end the help with the command's examples."""
    each_parameter(command, _tidy_param)
    examples = EXAMPLES.get(command.name or "")
    if examples and not command.epilog:
        command.epilog = "Examples:\n" + "\n".join(f"  {e}" for e in examples)


def enable_completion() -> None:
    """Register the completers of bash, zsh and fish (answering _MAILSNIFF_COMPLETE)."""
    from typer._completion_classes import completion_init

    completion_init()


def completion_script(shell: str) -> str:
    """The completion script for `shell`, for the command installed as `mailsniff`: the shell
    asks `mailsniff` itself (with _MAILSNIFF_COMPLETE set) for the words that fit."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(
        prog_name="mailsniff", complete_var="_MAILSNIFF_COMPLETE", shell=shell
    )


# -- roff ---------------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + line if line[:1] in (".", "'") else line) for line in text.split("\n")]
    return "\n".join(lines)


def _plain_help(text: str | None) -> str:
    """Help text without rich markup, on one line."""
    text = re.sub(r"\[/?[a-z ]+\]", "", text or "")
    return " ".join(text.split())


def _option_line(param: click.Parameter) -> str:
    names = [*param.opts, *param.secondary_opts]
    value = _value_name(param)
    shown = ", ".join(f"\\fB{_roff(n)}\\fR" for n in names)
    return f".TP\n{shown}" + (f" \\fI{_roff(value)}\\fR" if value else "")


def _params(params: Iterable[click.Parameter]) -> list[str]:
    out: list[str] = []
    for param in params:
        if getattr(param, "hidden", False):
            continue
        help_text = _plain_help(getattr(param, "help", None))
        if param.param_type_name == "argument":
            out += [".TP", f"\\fI{_roff(str(param.metavar or param.name))}\\fR", _roff(help_text)]
        else:
            out += [_option_line(param), _roff(help_text)]
    return out


def _exit_statuses() -> list[str]:
    """One entry per ExitStatus, with the meaning its definition documents (status.py)."""
    import inspect

    from mailsniff.status import ExitStatus

    out: list[str] = []
    comment: list[str] = []
    for raw in inspect.getsource(ExitStatus).splitlines():
        line = raw.strip()
        if line.startswith("#:"):
            comment.append(line[2:].strip())
        elif (match := re.fullmatch(r"([A-Z_]+) = (\d+)", line)) is not None:
            out += [".TP", f".B {match[2]}", _roff(" ".join(comment))]
            comment = []
        else:
            comment = []
    return out


def man_page(group: TyperGroup) -> str:
    """The manual page, section 1, of every command of `group` (roff)."""
    ctx = click.Context(group, info_name="mailsniff")
    lines = [
        f'.TH MAILSNIFF 1 "" "mailsniff {__version__}" "User Commands"',
        ".SH NAME",
        "mailsniff \\- " + _roff(_plain_help(group.help).split(":")[0]),
        ".SH SYNOPSIS",
        ".B mailsniff",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGUMENTS\\fR]",
        ".SH DESCRIPTION",
        _roff(_plain_help(group.help)),
        "Each command's options and examples follow; \\fBmailsniff \\fICOMMAND\\fB \\-\\-help\\fR "
        "shows the same text.",
        ".SH COMMANDS",
    ]
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx)
        usage = " ".join(command.collect_usage_pieces(sub))
        lines += [
            f".SS {_roff(name)}",
            f"\\fBmailsniff {_roff(name)}\\fR {_roff(usage)}",
            ".PP",
            _roff(_plain_help(command.help)),
            ".RS",
            *_params(command.params),
            ".RE",
        ]
        examples = EXAMPLES.get(name, ())
        if examples:
            lines += [".PP", "Examples:", ".RS", ".nf"]
            lines += [_roff(e) for e in examples]
            lines += [".fi", ".RE"]
    lines += [".SH EXIT STATUS", *_exit_statuses()]
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B MAILSNIFF_PLAIN",
        "1: plain records (\\fB\\-\\-plain\\fR) always; 0: the boxed view even when standard "
        "output is not a terminal. Unset: plain when it is not a terminal.",
        ".TP",
        ".B MAILSNIFF_PASSWORD",
        "The password of \\fBsend\\fR and \\fBpop\\fR.",
        ".SH SEE ALSO",
        ".BR tcpdump (1),",
        ".BR tshark (1),",
        ".BR pcap-filter (7)",
    ]
    return "\n".join(lines) + "\n"
