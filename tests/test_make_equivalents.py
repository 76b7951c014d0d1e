"""The committed stand-ins for the left-out malspam captures are exactly what the script builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.paths import DATA, EQUIVALENTS


def test_make_equivalents_rebuilds_the_committed_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(DATA / "make_equivalents.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    built = sorted(p.name for p in tmp_path.iterdir())
    assert built == sorted(p.name for p in EQUIVALENTS.iterdir())
    for name in built:
        assert (tmp_path / name).read_bytes() == (EQUIVALENTS / name).read_bytes(), name
