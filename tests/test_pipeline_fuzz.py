"""Hostile captures through the whole read path: only MailsniffError escapes; output is valid."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mailsniff.capture.reader import open_capture
from mailsniff.errors import MailsniffError
from mailsniff.pipeline import Pipeline
from mailsniff.render import console as console_render
from mailsniff.render import jsonl
from tests.jsonschema_check import validate_lines
from tests.paths import PCAPS, PUBLIC

SEEDS = [
    (PCAPS / "seed-telnet.pcap").read_bytes(),
    (PUBLIC / "zeek" / "smtp.pcap").read_bytes(),
    (PUBLIC / "suricata-verify" / "pop3-02-bug-7709.pcap").read_bytes(),
]


def run_whole_path(data: bytes, tmp: Path) -> None:
    path = tmp / "fuzz.pcap"
    path.write_bytes(data)
    pipeline = Pipeline(keep_transcript=True)
    out = Console(file=io.StringIO(), width=120, force_terminal=True)
    try:
        with open_capture(str(path)) as reader:
            sessions = list(pipeline.run(reader))
    except MailsniffError:
        pipeline.finish()
        sessions = pipeline.drain()
    lines = "\n".join(jsonl.dumps(jsonl.session_record(s, transcript=True)) for s in sessions)
    if lines:
        validate_lines(lines)
    console_render.render_overview(out, sessions)
    for session in sessions:
        console_render.render_session(out, session, transcript=True)


@settings(max_examples=60)
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=40),
)
def test_mutated_captures_never_crash(
    tmp_path_factory: pytest.TempPathFactory, which: int, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(SEEDS[which])
    for pos, value in edits:
        # skip the file header so most mutations reach records, payloads and the parsers
        data[24 + pos % (len(data) - 24)] = value
    run_whole_path(bytes(data), tmp_path_factory.mktemp("f"))


@settings(max_examples=30)
@given(st.sampled_from(range(len(SEEDS))), st.integers(25, 10**6))
def test_cut_captures_never_crash(
    tmp_path_factory: pytest.TempPathFactory, which: int, cut: int
) -> None:
    data = SEEDS[which]
    run_whole_path(data[: cut % len(data)], tmp_path_factory.mktemp("c"))
