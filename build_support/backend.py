"""PEP 517 backend: setuptools, asking for mypyc only when the compiled build will be made.

When it compiles, the build also asks for the project's own dependencies: mypyc type-checks the
compiled modules against the libraries they import (rich, typer, cryptography, ...), which the
isolated build environment would otherwise not have.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (the backend's other hooks, unchanged)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from native import MYPYC_REQUIREMENT, runtime_requirements, want_compiled  # noqa: E402


def _mypyc() -> list[str]:
    return [MYPYC_REQUIREMENT, *runtime_requirements()] if want_compiled()[0] else []


def _asking(hook, config_settings):  # type: ignore[no-untyped-def]
    """Run a setuptools requirements hook; setup.py does not compile while it runs."""
    os.environ["MAILSNIFF_GET_REQUIRES"] = "1"
    try:
        return hook(config_settings) + _mypyc()
    finally:
        del os.environ["MAILSNIFF_GET_REQUIRES"]


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    return _asking(_setuptools.get_requires_for_build_wheel, config_settings)


def get_requires_for_build_editable(config_settings=None):  # type: ignore[no-untyped-def]
    return _asking(_setuptools.get_requires_for_build_editable, config_settings)
