"""Start-up cost: rich (about 16 ms to import, a tenth of the start-up that `read --jobs N` pays
before its workers fork) is loaded only when a console is needed. `read --json` writes its
lines without one; a warning, an error or the console report loads it, and looks as before."""

from __future__ import annotations

from pathlib import Path

from mailsniff.status import ExitStatus
from tests.import_probe import run_probed
from tests.paths import PCAPS, REPO


def _run(*args: str, status: int = 0) -> tuple[str, list[str], bool]:
    proc, rich = run_probed("rich", *args)
    assert proc.returncode == status, proc.stderr
    return proc.stdout, proc.stderr.splitlines(), rich


def test_read_json_writes_its_lines_without_rich() -> None:
    for jobs in ("1", "2"):
        out, err, rich = _run("read", str(PCAPS / "seed-telnet.pcap"), "--json", "--jobs", jobs)
        assert err == []
        assert out.splitlines()[-1].startswith('{"type":"summary","sessions":3,')
        assert not rich


def test_a_warning_an_error_and_the_report_still_come_through_rich(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((PCAPS / "seed-telnet.pcap").read_bytes()[:-40])
    out, err, rich = _run("read", str(cut), "--json", status=ExitStatus.TRUNCATED)
    assert rich and err and err[0].startswith("mailsniff: warning: capture ends inside a record")
    missing = REPO / "no-such.pcap"
    out, err, rich = _run("read", str(missing), "--json", status=ExitStatus.INPUT_ERROR)
    assert rich and err == [f"mailsniff: error: cannot read {missing}: no such file"]
    out, err, rich = _run("read", str(PCAPS / "seed-telnet.pcap"), "--plain")
    assert rich and err == [] and out.startswith("session\t1\tsmtp\t")
