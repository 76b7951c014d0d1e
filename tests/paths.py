"""Where the test data lives: the one definition every test, conftest and cli_runner use."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
# Public captures and the results Zeek, Suricata, Arkime and nDPI publish for them
# (tests/data/public/PROVENANCE.md), minus the ones that carry malware.
PUBLIC = DATA / "public"
# Harmless stand-ins for the left-out captures, built by tests/data/make_equivalents.py.
EQUIVALENTS = DATA / "equivalents"
PCAPS = REPO / "pcaps"


def capture(key: str) -> Path:
    """`suricata-verify/pop3.pcap` (under PUBLIC) or `equivalents/smtp-errors.pcap`."""
    return DATA / key if key.startswith("equivalents/") else PUBLIC / key
