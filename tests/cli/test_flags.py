"""Every command's flags are unambiguous (rich-cli once bound -j to two options)."""

from __future__ import annotations

import typer.main

from mailsniff.cli import app


def test_no_flag_is_bound_twice_in_any_command() -> None:
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert {"read", "live", "creds", "send", "mx", "pop"} <= set(commands)
    for name, command in commands.items():
        seen: dict[str, str] = {}
        for param in command.params:
            for flag in [*param.opts, *param.secondary_opts]:
                if not flag.startswith("-"):
                    continue
                assert flag not in seen, f"{name}: {flag} bound to {seen[flag]} and {param.name}"
                seen[flag] = str(param.name)
