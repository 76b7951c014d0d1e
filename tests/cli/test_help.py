"""--help, the man page and shell completion come from the same command definitions."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from mailsniff.cli import _app_for, app
from mailsniff.commands.manual import EXAMPLES, man_page
from tests.cli_runner import REPO, run_cli

MAN = REPO / "docs" / "mailsniff.1"
#: What typer would print beside an option: `<bool>`, `<int>`, `<list[int]>`, `<float>`,
#: `<Path>`, `<AuthChoice>` ...
PYTHON_TYPE = re.compile(r"<(bool|int|float|str|text|path|list\[[^>]*\]|[A-Z]\w*)[^>]*>", re.I)


def _group() -> typer.core.TyperGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return group


COMMANDS = sorted(_group().commands)


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return str(result.stdout)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_python_type_names(command: str) -> None:
    text = _help(*([command] if command else []))
    assert not PYTHON_TYPE.findall(text.replace("<sha256>", "")), PYTHON_TYPE.findall(text)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_ends_with_two_or_three_examples(command: str) -> None:
    lines = [line.strip(" │") for line in _help(command).rstrip().splitlines()]
    start = max(i for i, line in enumerate(lines) if line.strip() == "Examples:")
    examples = [line.strip() for line in lines[start + 1 :] if line.strip()]
    assert 2 <= len(examples) <= 3
    assert all(e.startswith(f"mailsniff {command} ") for e in examples), examples
    assert examples == list(EXAMPLES[command])


def test_value_names_say_what_they_hold() -> None:
    text = _help("read")
    for expected in ("--jobs  -j", "--session  -s", "--host", "--filter  -f"):
        assert re.search(re.escape(expected).replace("\\ \\ ", r"\s+"), text), expected
    assert re.search(r"--jobs\s+-j\s+N\b", text)
    assert re.search(r"--host\s+IP\|CIDR", text)
    send = _help("send")
    assert re.search(r"--auth\s+LOGIN\|PLAIN\|CRAM-MD5", send)
    assert re.search(r"--timeout\s+NUM", send)
    assert re.search(r"--attach\s+PATH", send)


def test_the_shipped_man_page_is_the_one_the_definitions_make() -> None:
    assert MAN.read_text() == man_page(_group()), (
        "docs/mailsniff.1 is out of date: python -m mailsniff man > docs/mailsniff.1"
    )


def test_mailsniff_man_prints_the_page_and_groff_reads_it_without_warnings() -> None:
    proc = run_cli("man")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == MAN.read_text()
    groff = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z"], input=proc.stdout, capture_output=True, text=True
    )
    assert groff.returncode == 0 and groff.stderr == "", groff.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_the_man_page_documents_every_option_and_example_of_every_command(command: str) -> None:
    page = MAN.read_text()
    section = page.split(f"\n.SS {command}\n", 1)[1].split("\n.SS ", 1)[0].split("\n.SH ")[0]
    for param in _group().commands[command].params:
        for flag in [*param.opts, *param.secondary_opts]:
            if flag.startswith("-"):
                escaped = flag.replace("-", "\\-")
                assert f"\\fB{escaped}\\fR" in section, flag
    for example in EXAMPLES[command]:
        assert example.replace("-", "\\-") in section


def test_the_man_page_lists_every_exit_status() -> None:
    from mailsniff.status import ExitStatus

    exits = MAN.read_text().split(".SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    assert [int(n) for n in re.findall(r"^\.B (\d+)$", exits, re.M)] == [int(s) for s in ExitStatus]


# -- completion ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def on_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment where `mailsniff` runs this checkout (as the installed command would)."""
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "mailsniff"
    script.write_text(f'#!/bin/sh\ncd "{REPO}" && exec "{sys.executable}" -m mailsniff "$@"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("_MAILSNIFF")}
    env["PATH"] = f"{folder}{os.pathsep}{env.get('PATH', '')}"
    return env


def _bash_complete(env: dict[str, str], *words: str) -> list[str]:
    words_array = " ".join(f"'{w}'" for w in words)
    script = (
        "source <(mailsniff completion bash)\n"
        f"COMP_WORDS=({words_array}); COMP_CWORD={len(words) - 1}\n"
        '_mailsniff_completion mailsniff\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_commands_options_and_values(on_path: dict[str, str]) -> None:
    assert _bash_complete(on_path, "mailsniff", "cr") == ["creds"]
    assert set(_bash_complete(on_path, "mailsniff", "read", "--fi")) == {"--finding", "--filter"}
    assert _bash_complete(on_path, "mailsniff", "read", "--finding", "from") == ["from-mismatch"]
    assert _bash_complete(on_path, "mailsniff", "creds", "--protocol", "po") == ["pop3"]
    assert _bash_complete(on_path, "mailsniff", "completion", "") == ["bash", "zsh", "fish"]


def test_zsh_and_fish_scripts_ask_mailsniff_and_get_answers(on_path: dict[str, str]) -> None:
    zsh = run_cli("completion", "zsh").stdout
    assert zsh.startswith("#compdef mailsniff") and "_MAILSNIFF_COMPLETE=complete_zsh" in zsh
    fish = run_cli("completion", "fish").stdout
    assert "complete --command mailsniff" in fish and "_MAILSNIFF_COMPLETE=complete_fish" in fish
    # What each script runs when the user presses Tab:
    env = dict(on_path, _MAILSNIFF_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="mailsniff re")
    out = subprocess.run(["mailsniff"], capture_output=True, text=True, env=env, timeout=120)
    assert '"read"' in out.stdout and '"report"' in out.stdout and "live" not in out.stdout
    env = dict(
        on_path,
        _MAILSNIFF_COMPLETE="complete_fish",
        _TYPER_COMPLETE_FISH_ACTION="get-args",
        _TYPER_COMPLETE_ARGS="mailsniff creds --ho",
    )
    out = subprocess.run(["mailsniff"], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines() == [
        "--host\tOnly sessions with an address in this range at either end (repeatable)."
    ]


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["completion", "tcsh"])
    assert result.exit_code == 2


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_run_by_name_is_the_one_the_whole_app_has(command: str) -> None:
    """`mailsniff CMD ...` builds only CMD (cli._app_for): the same options, help and errors."""
    one = _app_for([command, "--json"])
    assert one is not app
    group = typer.main.get_command(one)
    assert isinstance(group, typer.core.TyperGroup)
    assert list(group.commands) == [command]
    mine, theirs = group.commands[command], _group().commands[command]
    assert [p.opts for p in mine.params] == [p.opts for p in theirs.params]
    for args in ([command, "--help"], [command, "--no-such-option"]):
        alone = CliRunner().invoke(one, args, env={"COLUMNS": "200"})
        whole = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"], ["rea"], ["-h", "read"]])
def test_anything_but_a_command_name_first_gets_every_command(args: list[str]) -> None:
    assert _app_for(args) is app
