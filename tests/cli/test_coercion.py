"""Option values: the short cut for plain values (commands/coercion.py) gives what typer's own
coercion gives, refuses nothing typer takes, and keeps pydantic out of a plain `read`."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from hypothesis import given, settings
from hypothesis import strategies as st
from typer import _click as click
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import TyperGroup, _TyperParameter

from mailsniff.cli import app
from mailsniff.commands.coercion import PlainRuntimeParam
from tests.import_probe import run_probed
from tests.paths import PCAPS


def _parameters() -> list[tuple[click.Command, _TyperParameter]]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    found: list[tuple[click.Command, _TyperParameter]] = []
    for command in [group, *group.commands.values()]:
        ctx = click.Context(command)
        help_option = command.get_help_option(ctx)
        for param in [*command.params, help_option]:
            if isinstance(param, _TyperParameter):
                found.append((command, param))
    return found


PARAMETERS = _parameters()

#: What a command line or a default hands the coercion: text (number-like, padded, signed,
#: words), numbers, bools, lists of those.
_TEXT = st.one_of(
    st.from_regex(r"[ +\-]?[0-9_]{0,22}(\.[0-9]*)?[ ]?", fullmatch=True),
    st.sampled_from(["", "yes", "true", "no", "1e3", "0x10", "１２", "-0", "007", "+5"]),
    st.text(max_size=8),
)
_VALUE = st.one_of(
    _TEXT,
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(_TEXT, max_size=3),
    st.lists(st.integers(-1000, 1000), max_size=3).map(tuple),
)


def _typer_coerces(param: _TyperParameter, ctx: click.Context, value: Any) -> tuple[bool, Any]:
    try:
        return True, build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)
    except BadParameter:
        return False, None


def test_every_parameter_of_every_command_has_the_short_cut() -> None:
    assert len(PARAMETERS) > 100
    assert all(isinstance(p._runtime_param, PlainRuntimeParam) for _, p in PARAMETERS)
    kinds = {p._runtime_param.kind for _, p in PARAMETERS if p._runtime_param is not None}
    assert len(kinds) >= 5  # str, int, bool, float, list[str] ... and the others


@pytest.mark.parametrize(
    ("command", "param"),
    PARAMETERS,
    ids=[f"{c.name}:{p.name}" for c, p in PARAMETERS],
)
@settings(max_examples=60, deadline=None)
@given(value=_VALUE)
def test_the_short_cut_gives_what_typer_gives(
    command: click.Command, param: _TyperParameter, value: Any
) -> None:
    runtime = param._runtime_param
    assert isinstance(runtime, PlainRuntimeParam)
    plain = runtime._plain(value)
    if plain is None:
        return  # typer's own coercion decides (it does for every value the short cut leaves)
    ok, want = _typer_coerces(param, click.Context(command), value)
    assert ok, f"typer refuses {value!r} for {param.name}, the short cut took it"
    assert plain == want and type(plain) is type(want)
    if isinstance(want, list):
        assert [type(x) for x in plain] == [type(x) for x in want]


def test_a_plain_read_never_imports_pydantic_and_a_bad_value_still_gets_typers_message() -> None:
    capture = str(PCAPS / "cc-bcc-smtplib.pcap")
    proc, pydantic = run_probed("pydantic", "read", capture, "--json", "--jobs", "2", "-p", "smtp")
    assert proc.returncode == 0 and not pydantic, proc.stderr
    proc, pydantic = run_probed("pydantic", "read", capture, "--jobs", "two")
    assert proc.returncode == 2 and pydantic, proc.stderr
    assert "Invalid value for '--jobs'" in proc.stderr
