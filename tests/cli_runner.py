"""Run the real CLI in a subprocess and parse its JSON Lines (for the end-to-end tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.jsonschema_check import validate_lines
from tests.paths import PCAPS, PUBLIC, REPO

__all__ = ["PCAPS", "PUBLIC", "REPO", "read_json", "run_cli"]  # paths re-exported for older imports


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailsniff", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def read_json(path: Path, *extra: str, status: int = 0) -> list[dict[str, Any]]:
    """`mailsniff read PATH --json`: every record schema-checked; returns the session records."""
    proc = run_cli("read", str(path), "--json", *extra)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    records = validate_lines(proc.stdout)
    assert records and records[-1]["type"] == "summary"
    return [r for r in records if r["type"] == "session"]
