"""What `mailsniff pop` does (RFC 1939): one POP3 action with the dialogue shown as it happens."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from mailsniff.commands.send import capturing, finish_session, show_lines
from mailsniff.render.active import listing_table
from mailsniff.render.console import render_session
from mailsniff.render.text import safe_text
from mailsniff.send.client import TlsMode
from mailsniff.send.mx import host_port
from mailsniff.send.pop import PopAction, PopOptions, PopResult, pop

__all__ = ["run_pop"]

POP3_PORT = 110
POP3S_PORT = 995


def run_pop(
    server: str,
    options: PopOptions,
    action: PopAction,
    out: Console,
    *,
    number: int | None = None,
    lines: int = 0,
    save: Path | None = None,
    capture: Path | None = None,
    redact: bool = False,
) -> PopResult:
    """Run one POP3 action with the transcript shown, then the decoded session; raises on error."""
    default = POP3S_PORT if options.tls is TlsMode.IMPLICIT else POP3_PORT
    host, port = host_port(server, default)
    with capturing(capture, out) as packets:
        result = pop(
            host,
            port,
            options,
            action,
            number=number,
            lines=lines,
            save=save,
            show=show_lines(out, [options.password] if redact else None),
            watch=packets.watch if packets is not None else None,
        )
    if result.session is not None:
        finish_session(result.session, redact)
        render_session(out, result.session, own=True)
    if result.listing:
        out.print(listing_table(result.listing))
    if result.saved is not None:
        out.print(Text(safe_text(f"saved {len(result.content or b'')} bytes to {result.saved}")))
    if result.error is not None:
        raise result.error
    return result
