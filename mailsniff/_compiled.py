"""The optional compiled build: which modules it compiles, and when the pure-Python ones run.

`pip install .` compiles the modules below with mypyc when a C compiler is present (setup.py);
their `.py` sources stay installed beside the extensions and are the same program. At import,
`select()` (called from `mailsniff/__init__.py`, which is never compiled) decides for all of
them at once, since compiled modules call each other directly:

* `MAILSNIFF_PURE=1` in the environment: the pure-Python modules run.
* The build wrote `_compiled_stamp.json` with the SHA-256 of each source it compiled. If a
  source no longer matches (an editable install whose `.py` was edited since the build), the
  extension is out of date and the pure-Python modules run, rather than stale code.
* No stamp, no extensions: the pure-Python build (no compiler, or `MAILSNIFF_PURE=1` at build).

`STATUS` says which, for `mailsniff --version` and the tests.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["COMPILED_MODULES", "GROUP", "STAMP", "STATUS", "select"]

#: Modules compiled by the fast build: the per-packet stages (record reading, L2-L4 decoding,
#: TCP reassembly), the SMTP/POP3 parsers, the MIME walker, RFC 2047, RFC 2231 and address
#: decoding, and the glue between them: the pipeline, the session builders (with their common
#: base, which the IMAP builder subclasses: a compiled class cannot be subclassed by an
#: interpreted one), the analysis run on every session as it ends (findings, Bcc, sender, ids,
#: the summary's counts), the text helpers and JSON Lines renderer, and the per-frame loops of
#: `read` and its --jobs workers (which every worker runs for every frame).
#: setup.py reads this tuple (as a literal), so keep it one.
COMPILED_MODULES = (
    "mailsniff.capture.frame",
    "mailsniff.capture.route",
    "mailsniff.capture.pcap",
    "mailsniff.capture.pcapng",
    "mailsniff.net.segment",
    "mailsniff.net.link",
    "mailsniff.net.ip",
    "mailsniff.net.tcp",
    "mailsniff.net.defrag",
    "mailsniff.net.decoder",
    "mailsniff.reassembly",
    "mailsniff.protocols.base",
    "mailsniff.protocols.replies",
    "mailsniff.protocols.sasl",
    "mailsniff.protocols.smtp",
    "mailsniff.protocols.pop3",
    "mailsniff.mail.rfc2047",
    "mailsniff.mail.addresses",
    "mailsniff.mail.rfc2231",
    "mailsniff.mail.mime",
    "mailsniff.pipeline",
    "mailsniff.session.base",
    "mailsniff.session.auth",
    "mailsniff.session.opaque",
    "mailsniff.session.smtp",
    "mailsniff.session.pop3",
    "mailsniff.session.imap",
    "mailsniff.analysis.bcc",
    "mailsniff.analysis.sender",
    "mailsniff.analysis.ids",
    "mailsniff.analysis.findings",
    "mailsniff.analysis.summary",
    "mailsniff.render.text",
    "mailsniff.render.jsonl",
    "mailsniff.shard",
)
#: The extension holding the compiled code of all of them (each module's own is a small shim).
GROUP = "mailsniff._native"
#: Written by the build next to the package's `__init__.py`: {"modules": {name: sha256}}.
STAMP = "_compiled_stamp.json"

#: "compiled", or "pure (<why>)".
STATUS = "pure (not built)"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _source(name: str) -> str:
    parts = name.split(".")[1:]
    return os.path.join(_PACKAGE_DIR, *parts) + ".py"


def _extension_present(name: str) -> bool:
    base = os.path.join(_PACKAGE_DIR, *name.split(".")[1:])
    return any(os.path.exists(base + s) for s in importlib.machinery.EXTENSION_SUFFIXES)


def _stale(recorded: dict[str, str]) -> str | None:
    """The first compiled module whose source differs from the one the build compiled."""
    for name in COMPILED_MODULES:
        try:
            with open(_source(name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            continue  # no source beside the extension: nothing to fall back to, nor to compare
        if recorded.get(name) != digest:
            return name
    return None


class _PureFinder:
    """Finds the `.py` source of the compiled modules ahead of their extensions."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self._names:
            return None
        source = _source(fullname)
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def select() -> str:
    """Decide compiled or pure for this process (once, before any compiled module is imported)."""
    global STATUS
    if any(isinstance(f, _PureFinder) for f in sys.meta_path):
        return STATUS
    stamp_path = os.path.join(_PACKAGE_DIR, STAMP)
    built = os.path.exists(stamp_path)
    if os.environ.get("MAILSNIFF_PURE", "") not in ("", "0"):
        reason: str | None = "MAILSNIFF_PURE is set"
    elif not built:
        reason = "not built"
    else:
        try:
            with open(stamp_path, encoding="utf-8") as f:
                recorded = json.load(f)["modules"]
            changed = _stale(recorded)
        except (OSError, ValueError, KeyError, TypeError):
            changed = "the build stamp"
        reason = None if changed is None else f"{changed} changed since the build"
        if reason is None and not all(_extension_present(n) for n in COMPILED_MODULES):
            reason = "extensions missing"
    if reason is None:
        STATUS = "compiled"
    else:
        STATUS = f"pure ({reason})"
        if built or any(_extension_present(n) for n in COMPILED_MODULES):
            sys.meta_path.insert(0, _PureFinder(COMPILED_MODULES))
    return STATUS
