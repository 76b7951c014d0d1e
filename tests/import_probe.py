"""`mailsniff ARGS...` in a fresh interpreter, through its real entry point, and whether the run
imported a package: for the tests of what start-up loads only when it is needed."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO

__all__ = ["run_probed"]

# argv[1] is the package or module (its submodules count); the last line on stderr says whether
# it was imported; the exit status is the command's.
_PROBE = """
import sys
from mailsniff.__main__ import main
package = sys.argv.pop(1)
sys.argv = ["mailsniff", *sys.argv[1:]]
status = None
try:
    main()
except SystemExit as exit:
    status = exit.code
imported = any(m == package or m.startswith(package + ".") for m in sys.modules)
print("imported:", imported, file=sys.stderr)
raise SystemExit(status)
"""


def run_probed(package: str, *args: str) -> tuple[subprocess.CompletedProcess[str], bool]:
    """The finished run (its status, and its stderr without the probe's line) and whether
    `package` was imported."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, package, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    *err, last = proc.stderr.splitlines()
    assert last.startswith("imported: "), proc.stderr
    proc.stderr = "".join(line + "\n" for line in err)
    return proc, last.startswith("imported: True")
