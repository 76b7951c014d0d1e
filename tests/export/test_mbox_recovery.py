"""--mbox after a killed run: only whole entries stay, and a second run adds nothing."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from tests.cli_runner import run_cli
from tests.export.captures import smtp_steps, write_smtp_capture

FIRST = b"Subject: one\r\n\r\nFrom the start\r\nbody one\r\n"
SECOND = b"Subject: two\r\n\r\n" + b"line of the second message\r\n" * 200


def write_mbox(capture: Path, target: Path) -> None:
    proc = run_cli("read", str(capture), "--mbox", str(target), "--summary")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_torn_last_entry_is_cut_off_and_written_again(tmp_path: Path) -> None:
    one = write_smtp_capture(tmp_path / "one.pcap", smtp_steps([FIRST]))
    both = write_smtp_capture(tmp_path / "both.pcap", smtp_steps([FIRST, SECOND]))
    clean = tmp_path / "clean.mbox"
    write_mbox(both, clean)
    whole = clean.read_bytes()
    assert stat.S_IMODE(clean.stat().st_mode) == 0o600
    first = tmp_path / "first.mbox"
    write_mbox(one, first)
    prefix = first.read_bytes()
    assert whole.startswith(prefix)
    second = whole[len(prefix) :]
    # What a kill -9 leaves: the second entry cut anywhere, its length still zeros.
    unfinished = re.sub(rb"X-Mailsniff-Length: \d{20}", b"X-Mailsniff-Length: " + b"0" * 20, second)
    cuts = [5, 60, 120, second.index(b"Subject: two") + 3, len(second) // 2, len(second) - 1]
    for cut in cuts:
        torn = tmp_path / f"torn{cut}.mbox"
        torn.write_bytes(prefix + unfinished[:cut])
        write_mbox(both, torn)
        assert torn.read_bytes() == whole, cut
    # Finished but cut short (a length that does not match) is cut off too.
    torn = tmp_path / "short.mbox"
    torn.write_bytes(whole[:-10])
    write_mbox(both, torn)
    assert torn.read_bytes() == whole


def test_a_second_run_of_the_same_command_adds_nothing(tmp_path: Path) -> None:
    both = write_smtp_capture(tmp_path / "both.pcap", smtp_steps([FIRST, SECOND]))
    target = tmp_path / "out.mbox"
    write_mbox(both, target)
    once = target.read_bytes()
    write_mbox(both, target)
    assert target.read_bytes() == once
    assert once.count(b"\nX-Mailsniff-SHA256: ") == 2


def test_messages_of_another_writer_are_kept_as_they_are(tmp_path: Path) -> None:
    both = write_smtp_capture(tmp_path / "both.pcap", smtp_steps([FIRST, SECOND]))
    target = tmp_path / "out.mbox"
    foreign = b"From x@y Thu Jan  1 00:00:00 1970\nSubject: old\n\nold body\n\n"
    target.write_bytes(foreign)
    write_mbox(both, target)
    data = target.read_bytes()
    assert data.startswith(foreign) and data.count(b"X-Mailsniff-SHA256: ") == 2
