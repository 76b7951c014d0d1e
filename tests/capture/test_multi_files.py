"""Several capture files read as one: rotations continue connections, order and overlaps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli_runner import run_cli
from tests.e2e.many_flows import Record, many_connections, write_records


def _read(*paths: Path | str, status: int = 0, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    proc = run_cli("read", *map(str, paths), "--json", *extra)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _split(records: list[Record], *cuts: int) -> list[list[Record]]:
    bounds = [0, *cuts, len(records)]
    return [records[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def test_connections_split_over_rotated_files_read_as_the_single_file(tmp_path: Path) -> None:
    records = many_connections()
    whole = _read(write_records(tmp_path / "whole.pcap", records))
    parts = _split(records, 700, 1900, 2600)  # every cut falls inside open connections
    files = [write_records(tmp_path / f"cap.pcap{n or ''}", p) for n, p in enumerate(parts)]
    assert _read(*files) == whole
    sessions = [r for r in whole if r["type"] == "session"]
    assert len(sessions) == 18 and all(r["complete"] for r in sessions)
    # a directory and a glob pattern name the same set (cap.pcap, cap.pcap1, ... in order)
    assert _read(tmp_path / "cap.pcap*") == whole
    (tmp_path / "whole.pcap").rename(tmp_path.parent / f"{tmp_path.name}-whole.pcap")
    assert _read(tmp_path) == whole
    assert _read(tmp_path, extra=("--jobs", "2")) == whole


def test_files_given_out_of_order_are_read_in_time_order_and_reported(tmp_path: Path) -> None:
    records = many_connections()
    whole = _read(write_records(tmp_path / "whole.pcap", records))
    a, b, c = (
        write_records(tmp_path / f"{n}.pcap", p)
        for n, p in zip("abc", _split(records, 1000, 2000), strict=False)
    )
    out = _read(c, a, b)
    assert [r for r in out if r["type"] == "session"] == [
        r for r in whole if r["type"] == "session"
    ]
    warnings = out[-1]["warnings"]
    assert len(warnings) == 1
    assert (
        "not in time order" in warnings[0] and "read in order of their first packet" in warnings[0]
    )
    assert {k: v for k, v in out[-1].items() if k != "warnings"} == {
        k: v for k, v in whole[-1].items() if k != "warnings"
    }


def test_overlapping_files_are_merged_by_timestamp_and_reported(tmp_path: Path) -> None:
    """Two interfaces captured at once: the packets interleave in time, as mergecap merges."""
    first = many_connections(6)
    second = many_connections(6, start_ns=first[0][0] + 500_000, first=20)
    merged = sorted(first + second, key=lambda r: r[0])
    whole = _read(write_records(tmp_path / "merged.pcap", merged))
    one = write_records(tmp_path / "eth0.pcap", first)
    two = write_records(tmp_path / "eth1.pcap", second)
    out = _read(two, one)
    assert [r for r in out if r["type"] == "session"] == [
        r for r in whole if r["type"] == "session"
    ]
    assert len([r for r in out if r["type"] == "session"]) == 12
    warnings = out[-1]["warnings"]
    assert any(
        "eth1.pcap overlaps" in w and "eth0.pcap" in w and "merged by timestamp" in w
        for w in warnings
    )


def test_a_missing_file_among_many_is_one_error_before_any_output(tmp_path: Path) -> None:
    records = many_connections(4)
    a, b = (
        write_records(tmp_path / f"{n}.pcap", p)
        for n, p in zip("ab", _split(records, 300), strict=False)
    )
    proc = run_cli("read", str(a), str(tmp_path / "gone.pcap"), str(b), "--json")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert "gone.pcap" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / "notes.txt").write_text("not a capture\n")
    proc = run_cli("read", str(tmp_path), "--json")
    assert proc.returncode == 3 and proc.stdout == ""
    assert "notes.txt" in proc.stderr and "not a pcap" in proc.stderr


def test_a_file_cut_short_inside_the_set_is_reported_and_the_rest_still_read(
    tmp_path: Path,
) -> None:
    records = many_connections()
    a, b = _split(records, 1500)
    first = write_records(tmp_path / "cap.pcap", a)
    first.write_bytes(first.read_bytes()[:-100])  # the last record loses its end
    second = write_records(tmp_path / "cap.pcap1", b)
    out = _read(first, second, status=4)
    summary = out[-1]
    assert summary["frames"] == len(records) - 1
    assert any(
        "cap.pcap is cut short" in w and "following files were still read" in w
        for w in summary["warnings"]
    )
    assert summary["sessions"] == 18


def test_standard_input_cannot_be_mixed_with_files(tmp_path: Path) -> None:
    path = write_records(tmp_path / "a.pcap", many_connections(2))
    proc = run_cli("read", "-", str(path))
    assert proc.returncode == 3
    assert "standard input" in proc.stderr and "Traceback" not in proc.stderr
