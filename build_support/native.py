"""Build-time decision for the optional compiled fast path (shared by setup.py and backend.py).

Compiled when a C compiler and Python's headers are present, unless MAILSNIFF_PURE is set (to
anything but "" or "0"). MAILSNIFF_COMPILED=1 makes a failed compilation an error instead of a
fallback to the pure-Python build (CI sets it: a build that should be compiled must be).
"""

from __future__ import annotations

import ast
import os
import shlex
import shutil
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Build requirement when compiling: mypyc ships with mypy.
MYPYC_REQUIREMENT = "mypy>=1.13"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def compiler_available() -> tuple[bool, str]:
    """Whether a C compiler and Python.h are there; if not, why."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    try:
        exe = shlex.split(cc)[0]
    except (ValueError, IndexError):
        return False, f"unusable CC {cc!r}"
    if shutil.which(exe) is None:
        return False, f"no C compiler ({exe} not found)"
    include = sysconfig.get_paths().get("include", "")
    if not os.path.exists(os.path.join(include, "Python.h")):
        return False, f"no Python headers ({include}/Python.h; install python3-dev)"
    return True, ""


def want_compiled() -> tuple[bool, str]:
    """(compile?, why not)."""
    if env_flag("MAILSNIFF_PURE"):
        return False, "MAILSNIFF_PURE is set"
    return compiler_available()


def runtime_requirements() -> list[str]:
    """[project] dependencies from pyproject.toml: what mypyc needs to type-check the compiled
    modules (they import rich, typer, cryptography, ...)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def compiled_modules() -> list[str]:
    """COMPILED_MODULES from mailsniff/_compiled.py, read without importing the package."""
    tree = ast.parse((ROOT / "mailsniff" / "_compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMPILED_MODULES" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise RuntimeError("COMPILED_MODULES not found in mailsniff/_compiled.py")


def group_name() -> str:
    tree = ast.parse((ROOT / "mailsniff" / "_compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "GROUP" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise RuntimeError("GROUP not found in mailsniff/_compiled.py")
