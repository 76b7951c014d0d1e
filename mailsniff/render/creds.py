"""The `creds` table and JSON records of the credentials `analysis.credentials` gathered."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from mailsniff.analysis.credentials import Credential, CredentialTable
from mailsniff.render.jsonl import dumps, iso8601
from mailsniff.render.text import format_timestamp, safe_text

__all__ = [
    "Credential",
    "CredentialTable",  # re-exported: the runners gather and render through this module
    "credential_record",
    "plain_credentials",
    "render_credentials",
]

_HASHCAT = {"NetNTLMv2": 5600, "NetNTLMv1": 5500}


def credential_record(c: Credential) -> dict[str, Any]:
    """One JSON Lines record (`creds --json`)."""
    return {
        "type": "credential",
        "protocol": c.protocol,
        "clients": list(c.clients),
        "server": {"ip": c.server.ip, "port": c.server.port},
        "mechanism": c.mechanism,
        "username": c.username,
        "password": c.password,
        "authzid": c.authzid,
        "challenge": c.challenge,
        "response": c.response,
        "domain": c.domain,
        "hash_type": c.hash_type,
        # the line `hashcat -m 5600` (NetNTLMv2) / `-m 5500` (NetNTLMv1) cracks, when captured
        "hashcat": c.response if c.hash_type in _HASHCAT and c.challenge is not None else None,
        "worked": c.worked,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "first_seen": iso8601(c.first_ns),
        "last_seen": iso8601(c.last_ns),
        "count": c.count,
    }


def _cell(value: str | None) -> Text:
    return Text("-", style="dim") if value is None else Text(safe_text(value))


def _secret(c: Credential) -> Text:
    if c.hash_type in _HASHCAT:
        mode = f"{c.hash_type} (hashcat -m {_HASHCAT[c.hash_type]})\n"
        if c.response is None:
            return Text.assemble((mode, "dim"), ("server challenge not captured", "dim"))
        return Text.assemble((mode, "dim"), _cell(c.response))
    if c.password is None and (c.challenge is not None or c.response is not None):
        return Text.assemble(
            ("challenge ", "dim"), _cell(c.challenge), ("\nresponse ", "dim"), _cell(c.response)
        )
    return _cell(c.password)


#: Client addresses shown in a creds row; more are counted ("+3 more"), all are in the JSON.
_CLIENTS_SHOWN = 3


def _clients(c: Credential) -> Text:
    shown = "\n".join(safe_text(ip) for ip in c.clients[:_CLIENTS_SHOWN])
    more = len(c.clients) - _CLIENTS_SHOWN
    return Text.assemble(shown, (f"\n+{more} more", "dim") if more > 0 else "")


def plain_credentials(rows: Iterable[Credential]) -> Iterator[str]:
    """`creds --plain`: one tab-separated line per credential, no padding or box drawing."""
    for c in rows:
        secret = c.password
        if c.hash_type in _HASHCAT or (secret is None and c.response is not None):
            secret = c.response
        worked = {True: "yes", False: "no", None: "?"}[c.worked]
        fields = (
            "credential",
            ",".join(c.clients),
            str(c.server),
            c.protocol,
            c.mechanism,
            f"user={c.username if c.username is not None else '-'}",
            f"secret={secret if secret is not None else '-'}",
            f"worked={worked}",
            f"count={c.count}",
            f"first={iso8601(c.first_ns)}",
            f"last={iso8601(c.last_ns)}",
        )
        yield "\t".join(safe_text(f) for f in fields)


def _when(ts_ns: int) -> str:
    return format_timestamp(ts_ns, micro=False).replace("T", " ").removesuffix("Z")


def _worked(c: Credential) -> Text:
    if c.worked is True and c.failed:
        return Text.assemble(("yes", "bold green"), (f" {c.failed}\u2717", "dim"))
    if c.worked is True:
        return Text("yes", style="bold green")
    if c.worked is False:
        return Text("no", style="bold red")
    return Text("?", style="dim")


def render_credentials(
    console: Console, rows: Iterable[Credential], *, json: bool, plain: bool = False
) -> int:
    """Print the table (or JSON Lines, or plain lines); returns the number of rows."""
    rows = list(rows)
    if plain:
        for line in plain_credentials(rows):
            console.file.write(line + "\n")
        console.file.flush()
        return len(rows)
    if json:
        for c in rows:
            console.file.write(dumps(credential_record(c)) + "\n")
        console.file.flush()
        return len(rows)
    table = Table(
        Column("client -> server", no_wrap=True),
        Column("protocol", no_wrap=True),
        Column("username", overflow="fold", min_width=8),
        Column("password / secret", overflow="fold", min_width=12),
        Column("worked", no_wrap=True),
        Column("first / last seen", overflow="fold", min_width=10),
        title=Text(f"Credentials ({len(rows)})", style="bold"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
    )
    for c in rows:
        seen = _when(c.first_ns)
        if c.last_ns != c.first_ns:
            seen += "\n" + _when(c.last_ns)
        table.add_row(
            Text.assemble(_clients(c), "\n-> ", str(c.server)),
            Text.assemble(c.protocol.upper(), "\n", (safe_text(c.mechanism), "dim")),
            _cell(c.username),
            _secret(c),
            Text.assemble(_worked(c), f"\n{c.count}x"),
            seen,
        )
    console.print(table)
    return len(rows)
