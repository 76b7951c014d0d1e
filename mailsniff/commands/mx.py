"""What `mailsniff mx` does: look up a domain's MX hosts (RFC 5321 5.1) and print them."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from mailsniff.render.active import mx_table
from mailsniff.render.jsonl import dumps
from mailsniff.render.text import safe_text
from mailsniff.send.mx import MxResult, lookup_mx, make_resolver

__all__ = ["mx_record", "mx_warnings", "run_mx"]


def _warn(err: Console, text: str) -> None:
    err.print(Text("mailsniff: warning: ", style="bold yellow") + Text(safe_text(text)))


def mx_record(result: MxResult) -> dict[str, Any]:
    """`mx --json`: one record per domain (docs/send.schema.json, docs/send.md)."""
    return {
        "type": "mx",
        "domain": result.domain,
        "implicit": result.implicit,
        "null_mx": result.null_mx,
        "hosts": [
            {
                "preference": h.preference,
                "host": h.host,
                "addresses": list(h.addresses),
                "problem": h.problem,
                "warnings": list(h.warnings),
            }
            for h in result.hosts
        ],
    }


def mx_warnings(result: MxResult) -> list[str]:
    out = [w for h in result.hosts for w in h.warnings]
    out += [f"{h.host}: {h.problem}" for h in result.hosts if h.problem and not h.addresses]
    return out


def run_mx(
    domain: str, resolver: str | None, timeout: float, out: Console, *, json: bool = False
) -> None:
    """Print the MX hosts of `domain` with their addresses; raises NetworkError on failure.

    A lookup that failed while others answered is a warning on stderr, not a failure.
    """
    result = lookup_mx(domain, make_resolver(resolver, timeout))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if json:
        out.file.write(dumps(mx_record(result)) + "\n")
        out.file.flush()
    elif result.null_mx:
        out.print(Text(f"{result.domain}: null MX (RFC 7505): the domain accepts no mail"))
    else:
        hosts = [
            (h.preference, h.host, ", ".join(h.addresses) if h.addresses else f"({h.problem})")
            for h in result.hosts
        ]
        out.print(mx_table(result.domain, hosts))
        if result.implicit:
            out.print(
                Text(
                    f"no MX records: mail goes to {result.domain} itself "
                    "(implicit MX, RFC 5321 5.1)",
                    style="yellow",
                )
            )
    for warning in mx_warnings(result):
        _warn(err, warning)
