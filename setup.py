"""Build script: the optional compiled fast path (metadata is in pyproject.toml).

With a C compiler, the modules listed in mailsniff/_compiled.py are compiled with mypyc into
one extension (`mailsniff._native__mypyc`) plus a small shim per module; their .py sources are
installed as well, as the fallback. Without a compiler, with MAILSNIFF_PURE=1, or if compiling
fails, the build is pure Python (a py3-none-any wheel). MAILSNIFF_COMPILED=1 turns those
fallbacks into errors. See docs/performance.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "build_support"))
from native import compiled_modules, env_flag, group_name, want_compiled  # noqa: E402

STAMP = "_compiled_stamp.json"


def _say(message: str) -> None:
    print(f"mailsniff build: {message}", file=sys.stderr, flush=True)


def _fallback(why: str) -> None:
    if env_flag("MAILSNIFF_COMPILED"):
        raise SystemExit(f"mailsniff build: MAILSNIFF_COMPILED=1 but {why}")
    _say(f"building the pure-Python version: {why}")


def _in_tree_artifacts() -> list[Path]:
    """Extensions and stamp an earlier in-place (editable) build left in the source tree."""
    found = [ROOT / "mailsniff" / STAMP]
    for suffix in EXTENSION_SUFFIXES:
        found += (ROOT / "mailsniff").rglob("*" + suffix)
    return [p for p in found if p.exists()]


DIGESTS: dict[str, str] = {}


def _extensions() -> list:  # type: ignore[type-arg]
    if env_flag("MAILSNIFF_GET_REQUIRES"):  # the backend is only asking what the build needs
        return []
    ok, why = want_compiled()
    if not ok:
        _fallback(why)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _fallback("mypyc is not installed (pip install mypy)")
        return []
    paths = [str(Path(*m.split("."))) + ".py" for m in compiled_modules()]
    # What the extensions are compiled from, recorded in the stamp (mailsniff/_compiled.py).
    DIGESTS.update(
        (m, hashlib.sha256((ROOT / p).read_bytes()).hexdigest())
        for m, p in zip(compiled_modules(), paths, strict=True)
    )
    cwd = os.getcwd()
    os.chdir(ROOT)  # mypyc type-checks with the project's [tool.mypy] settings
    try:
        return mypycify(paths, opt_level="3", debug_level="0", group_name=group_name())
    except (Exception, SystemExit) as exc:  # a type error or a mypyc failure
        _fallback(f"mypyc failed: {exc}")
        return []
    finally:
        os.chdir(cwd)


EXTENSIONS = _extensions()


class BuildExt(build_ext):
    """Compile; on failure fall back to pure Python (no partial set). Write the stamp."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # compiler or linker errors
            for ext in self.extensions:
                built = Path(self.build_lib) / self.get_ext_filename(
                    self.get_ext_fullname(ext.name)
                )
                built.unlink(missing_ok=True)
            self.extensions = []
            self.distribution.ext_modules = []
            _fallback(f"compiling failed: {exc}")
            return
        target = ROOT / "mailsniff" if self.inplace else Path(self.build_lib) / "mailsniff"
        target.mkdir(parents=True, exist_ok=True)
        (target / STAMP).write_text(json.dumps({"modules": DIGESTS}, indent=1) + "\n")
        self._stamp = str(target / STAMP)
        _say(f"compiled {len(DIGESTS)} modules with mypyc")

    def get_outputs(self) -> list[str]:
        stamp = getattr(self, "_stamp", None)
        return super().get_outputs() + ([stamp] if stamp and not self.inplace else [])


class BuildPy(build_py):
    """An editable build first removes what an earlier one left in place (a pure build would
    leave it, a compiled one might leave extensions of modules no longer compiled)."""

    def run(self) -> None:
        if self.editable_mode:
            for path in _in_tree_artifacts():
                _say(f"removing {path.relative_to(ROOT)} (earlier compiled build)")
                path.unlink()
        super().run()


setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": BuildExt, "build_py": BuildPy})
