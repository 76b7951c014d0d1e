"""`mailsniff ARGS...` in a fresh interpreter, through its real entry point, and whether the run
imported a package (or any of several): for the tests of what is loaded only when needed."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO

__all__ = ["run_probed"]

# argv[1] is the packages or modules, comma-separated (their submodules count); the last line on
# stderr says whether any was imported; the exit status is the command's.
_PROBE = """
import sys
from mailsniff.__main__ import main
packages = sys.argv.pop(1).split(",")
sys.argv = ["mailsniff", *sys.argv[1:]]
status = None
try:
    main()
except SystemExit as exit:
    status = exit.code
imported = any(m == p or m.startswith(p + ".") for m in sys.modules for p in packages)
print("imported:", imported, file=sys.stderr)
raise SystemExit(status)
"""


def run_probed(
    package: str | tuple[str, ...], *args: str
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """The finished run (its status, and its stderr without the probe's line) and whether
    `package` (or any of a tuple of them) was imported."""
    names = package if isinstance(package, tuple) else (package,)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(names), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    *err, last = proc.stderr.splitlines()
    assert last.startswith("imported: "), proc.stderr
    proc.stderr = "".join(line + "\n" for line in err)
    return proc, last.startswith("imported: True")
