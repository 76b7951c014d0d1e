"""`python -m mailsniff`, and the `mailsniff` command's entry point."""

from __future__ import annotations

import gc


def main() -> None:
    """Import the command line with the garbage collector off, then leave what the imports made
    (modules, classes, typer's, rich's and the registry's tables: most objects the process will
    ever hold) out of every later collection, the one at exit too."""
    gc.disable()
    try:
        from mailsniff.cli import main as run
    finally:
        gc.freeze()
        gc.enable()
    run()


if __name__ == "__main__":
    main()
