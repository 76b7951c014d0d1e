"""`mailsniff report`: the shipped captures' reports opened in headless Chromium."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.cli_runner import PCAPS, run_cli
from tests.report.conftest import Opened, visible_rows, wait_until

SEED = PCAPS / "seed-telnet.pcap"
CC_BCC = PCAPS / "cc-bcc-smtplib.pcap"


def make_report(tmp_path: Path, *captures: Path, name: str = "report.html") -> Path:
    out = tmp_path / name
    proc = run_cli("report", *(str(c) for c in captures), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return out


def assert_clean_load(seen: Opened, path: Path, *, packed: bool = False) -> None:
    """No console errors or warnings, no script errors, and no request but the file itself."""
    assert seen.errors == []
    assert [m for m in seen.console if m[0] in ("error", "warning")] == []
    assert seen.requests == [path.resolve().as_uri()]
    hrefs = seen.page.eval_on_selector_all("a[href]", "as => as.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("#") for h in hrefs)
    dangling = "as => as.filter(a => !document.getElementById(a.getAttribute('href').slice(1)))"
    targets = seen.page.eval_on_selector_all("a[href]", dangling + ".length")
    assert packed or targets == 0  # every link lands on a finding's session, transaction or section


def count(page: Any, selector: str) -> int:
    return int(page.eval_on_selector_all(selector, "es => es.length"))


def test_seed_report_answers_the_three_questions(tmp_path: Path, open_report: Any) -> None:
    path = make_report(tmp_path, SEED)
    seen = open_report(path)
    page = seen.page
    assert_clean_load(seen, path)
    page.screenshot(path=str(tmp_path / "seed-report.png"), full_page=True)
    assert (tmp_path / "seed-report.png").stat().st_size > 50_000

    # chain of custody: the input's size and sha256, packet times and counts, the command
    data = SEED.read_bytes()
    inputs = page.inner_text("table.inputs")
    assert hashlib.sha256(data).hexdigest() in inputs
    assert str(len(data)) in inputs
    assert "2006-07-03T13:07:18.000000Z" in inputs and "2011-05-17T02:36:46" in inputs
    custody = page.inner_text("table.custody")
    assert "mailsniff report" in custody and "seed-telnet.pcap" in custody
    assert "147" in custody  # packets

    # findings first, highest severity first, each linked to its session
    severities = page.eval_on_selector_all(
        "#findings details.sevgroup summary .sev", "es => es.map(e => e.textContent)"
    )
    assert severities == ["high", "medium", "low"]
    forged = page.locator("#findings tr.frow", has_text="from-mismatch").first
    assert "header From cccc@163.com" in forged.inner_text()
    assert forged.locator("a").get_attribute("href") == "#s1-1-t2"

    # the forged From in the session, the GBK display name decoded
    assert "cccc@163.com" in page.inner_text("#s1-1-t2")
    assert "张帆 <name@youname.com>" in page.inner_text("#s1-3")

    # timeline: 3 sessions on 2 client lanes; AUTH refused, then accepted, in session 1
    assert count(page, "#timeline rect.bar") == 3
    assert count(page, "#timeline g.lane") == 2
    marks = page.eval_on_selector_all(
        '#timeline g.mark[data-s="s1-1"]',
        "es => es.map(e => [e.classList[1], e.getBBox().x])",
    )
    auth = sorted((x, kind) for kind, x in marks if kind.startswith("auth"))
    assert [kind for _, kind in auth] == ["auth-fail", "auth-ok"]
    assert count(page, "#timeline g.auth-fail") == 1
    assert count(page, "#timeline g.auth-ok") == 2  # SMTP and POP3 logins
    assert count(page, "#timeline g.rejected") == 1  # MAIL FROM:<test@163.com> refused
    page.click('#timeline rect.bar[data-s="s1-3"]')
    assert page.evaluate("location.hash") == "#s1-3"  # a bar opens its session

    # graph: 2 senders, 2 recipients, one edge each; the forged one marked; no Bcc in the seed
    assert count(page, "#graph g.node") == 4
    assert count(page, "#graph path.edge") == 2
    assert count(page, "#graph path.edge.forged") == 1
    assert count(page, "#graph path.edge.k-bcc") == 0
    assert "cccc@163.com" in (page.text_content("#graph .forged-label") or "")

    # credentials: the two distinct secrets
    assert count(page, "#credentials tr") == 3
    assert "mypassword" in page.inner_text("#credentials")


def test_shipped_captures_report_draws_the_bcc_edge(tmp_path: Path, open_report: Any) -> None:
    """The seed and the real smtplib capture of its To + Cc + Bcc answer, in one report."""
    path = make_report(tmp_path, SEED, CC_BCC)
    seen = open_report(path)
    page = seen.page
    assert_clean_load(seen, path)
    assert count(page, "table.inputs tr") == 3
    assert count(page, "#timeline rect.bar") == 4
    assert count(page, "#graph g.node") == 4 + 4  # alice, bob, carol, dave
    kinds = page.eval_on_selector_all(
        '#graph path.edge[data-s="s2-1"]', "es => es.map(e => e.dataset.kind).sort()"
    )
    assert kinds == ["bcc", "cc", "to"]
    bcc = page.locator("#graph path.edge.k-bcc")
    assert bcc.count() == 1
    tip = bcc.locator("title").text_content() or ""
    assert "alice@example.com -> dave@example.com: bcc" in tip
    dash = page.eval_on_selector(
        "#graph path.edge.k-bcc", "e => getComputedStyle(e).strokeDasharray"
    )
    assert dash not in ("", "none")  # drawn differently from To/Cc
    assert "Bcc (envelope only)" in page.inner_text("#s2-1 table.envelope")


def test_search_and_filters_narrow_the_sessions(tmp_path: Path, open_report: Any) -> None:
    path = make_report(tmp_path, SEED, CC_BCC)
    page = open_report(path).page
    assert len(visible_rows(page)) == 4
    page.fill("#q", "dave@example")
    assert visible_rows(page) == ["s2-1"]
    assert page.inner_text("#shown") == "1"
    assert page.is_hidden("#s1-1") and page.is_visible("#s2-1")
    page.fill("#q", "")
    page.select_option("#f-proto", "pop3")
    assert visible_rows(page) == ["s1-2"]
    page.select_option("#f-proto", "")
    page.select_option("#f-find", "auth-failed")
    assert visible_rows(page) == ["s1-1"]
    page.select_option("#f-find", "")
    page.fill("#f-addr", "tonanme@them.com")
    assert visible_rows(page) == ["s1-3"]
    dimmed = page.eval_on_selector_all(
        "#timeline rect.bar.dimmed", "es => es.map(e => e.dataset.s)"
    )
    assert sorted(dimmed) == ["s1-1", "s1-2", "s2-1"]
    page.fill("#f-addr", "")
    page.select_option("#f-client", "127.0.0.1")
    assert visible_rows(page) == ["s2-1"]
    page.click("button[type=reset]")
    wait_until(page, "document.getElementById('shown').textContent === '4'")
    assert len(visible_rows(page)) == 4


def test_transcript_is_folded_with_base64_decoded_beside(tmp_path: Path, open_report: Any) -> None:
    path = make_report(tmp_path, SEED)
    page = open_report(path).page
    transcript = page.locator("#s1-1 details.transcript")
    assert transcript.get_attribute("open") is None
    assert page.is_hidden("#s1-1 details.transcript pre")
    transcript.locator("summary").click()
    text = page.inner_text("#s1-1 details.transcript pre")
    assert "C: Y3Jhenl3aWxs  → crazywill" in text
    assert "C: bXlwYXNzd29yZA==  → mypassword" in text
    auth_rows = page.eval_on_selector_all("#s1-1 table.auth tr", "rs => rs.map(r => r.className)")
    assert auth_rows[1:] == ["auth-fail", "auth-ok"]


def test_large_reports_keep_details_compressed_and_open_them(
    tmp_path: Path, open_report: Any, monkeypatch: Any
) -> None:
    """Past the inline budget, details are gzip blocks unpacked in the browser when opened."""
    from rich.console import Console

    from mailsniff.render import report as report_render
    from mailsniff.report import ReportOptions, write_report

    monkeypatch.setattr(report_render, "INLINE_DETAILS_BYTES", 0)
    monkeypatch.setattr(report_render, "CHUNK_SESSIONS", 2)
    out = tmp_path / "packed.html"
    options = ReportOptions(
        paths=(str(SEED),), output=str(out), command_line="test", progress=False
    )
    write_report(options, Console(stderr=True))
    html = out.read_text(encoding="utf-8")
    assert 'id="s1-3"' not in html and "张帆 &lt;" not in html  # inside the compressed blocks
    seen = open_report(out)
    page = seen.page
    assert count(page, "section.sdet") == 0
    page.click('tr.srow[data-s="s1-3"] a')
    page.wait_for_selector("#s1-3")
    assert "张帆 <name@youname.com>" in page.inner_text("#s1-3")
    assert count(page, "section.sdet") == 1  # the block holding session 3 alone
    page.click('#findings tr.frow a[href="#s1-1-t2"]')
    page.wait_for_selector("#s1-1-t2")
    assert "cccc@163.com" in page.inner_text("#s1-1-t2")
    assert_clean_load(seen, out, packed=True)


def test_long_findings_groups_and_credentials_are_folded_compressed_and_open(
    tmp_path: Path, open_report: Any, monkeypatch: Any
) -> None:
    """Past PACKED_ROWS rows, a findings group or the credentials table is a gzip block that
    the browser unpacks when it is opened, and the filters apply to the rows it brings."""
    from rich.console import Console

    from mailsniff.render import report as report_render
    from mailsniff.report import ReportOptions, write_report

    monkeypatch.setattr(report_render, "PACKED_ROWS", 0)
    out = tmp_path / "folded.html"
    options = ReportOptions(
        paths=(str(SEED),), output=str(out), command_line="test", progress=False
    )
    write_report(options, Console(stderr=True))
    html = out.read_text(encoding="utf-8")
    # the credentials table and the findings rows are inside compressed blocks
    assert 'class="grid creds"' not in html and 'class="frow"' not in html
    seen = open_report(out)
    page = seen.page
    assert count(page, "#findings tr.frow") == 0
    assert count(page, "#credentials table.creds") == 0
    page.click("#credentials details.credgroup > summary")
    page.wait_for_selector("#credentials table.creds")
    creds = page.inner_text("#credentials table.creds")
    assert "crazywill" in creds and "mypassword" in creds
    assert count(page, "#credentials div.packed") == 0  # the placeholder is gone
    # a filter set before a group is opened applies to the rows it brings
    page.select_option("#f-proto", "pop3")
    high = "#findings details.sevgroup:has(.sev-high)"
    page.click(f"{high} > summary")
    page.wait_for_selector(f"{high} tr.frow", state="attached")
    rows = page.eval_on_selector_all(
        f"{high} tr.frow", "rs => rs.map(r => [r.dataset.s, r.hidden])"
    )
    assert sorted(set(map(tuple, rows))) == [("s1-1", True), ("s1-2", False)]
    page.select_option("#f-proto", "")
    medium = "#findings details.sevgroup:has(.sev-medium)"
    page.click(f"{medium} > summary")
    page.click(f'{medium} tr.frow a[href="#s1-1-t2"]')
    page.wait_for_selector("#s1-1-t2")
    assert "cccc@163.com" in page.inner_text("#s1-1-t2")
    assert_clean_load(seen, out)


def test_a_long_session_list_comes_in_blocks_after_loading_and_filters_wait_for_them(
    tmp_path: Path, open_report: Any, monkeypatch: Any
) -> None:
    """Past INLINE_ROWS, session-list rows are compressed blocks added once the page has loaded;
    the filters and the links to a session work on every row."""
    from rich.console import Console

    from mailsniff.render import report as report_render
    from mailsniff.report import ReportOptions, write_report

    monkeypatch.setattr(report_render, "INLINE_ROWS", 1)
    monkeypatch.setattr(report_render, "ROWS_PER_BLOCK", 2)
    monkeypatch.setattr(report_render, "INLINE_DETAILS_BYTES", 0)  # details packed as well
    monkeypatch.setattr(report_render, "CHUNK_SESSIONS", 1)
    out = tmp_path / "rows.html"
    options = ReportOptions(
        paths=(str(SEED), str(CC_BCC)), output=str(out), command_line="test", progress=False
    )
    write_report(options, Console(stderr=True))
    html = out.read_text(encoding="utf-8")
    assert html.count('<tr class="srow"') == 1  # the other three are in two compressed blocks
    assert html.count('class="rows"') == 2
    seen = open_report(out)
    page = seen.page
    wait_until(page, "document.querySelectorAll('tr.srow').length === 4")
    assert visible_rows(page) == ["s1-1", "s1-2", "s1-3", "s2-1"]  # in order
    page.fill("#q", "dave@example")
    assert visible_rows(page) == ["s2-1"]
    page.fill("#q", "")
    page.click('tr.srow[data-s="s1-3"] a')
    page.wait_for_selector("#s1-3")
    assert "张帆 <name@youname.com>" in page.inner_text("#s1-3")
    assert_clean_load(seen, out, packed=True)


def test_a_link_to_a_session_in_a_late_block_opens_it(
    tmp_path: Path, open_report: Any, monkeypatch: Any
) -> None:
    from rich.console import Console

    from mailsniff.render import report as report_render
    from mailsniff.report import ReportOptions, write_report

    monkeypatch.setattr(report_render, "INLINE_ROWS", 1)
    monkeypatch.setattr(report_render, "ROWS_PER_BLOCK", 1)
    monkeypatch.setattr(report_render, "INLINE_DETAILS_BYTES", 0)
    monkeypatch.setattr(report_render, "CHUNK_SESSIONS", 1)
    out = tmp_path / "late.html"
    options = ReportOptions(
        paths=(str(SEED),), output=str(out), command_line="test", progress=False
    )
    write_report(options, Console(stderr=True))
    seen = open_report(out)
    page = seen.page
    page.goto(out.resolve().as_uri() + "#s1-3")
    page.wait_for_selector("#s1-3")
    assert "张帆 <name@youname.com>" in page.inner_text("#s1-3")


def test_timeline_lanes_past_the_first_are_drawn_from_a_compressed_block_on_show_all(
    tmp_path: Path, open_report: Any, monkeypatch: Any
) -> None:
    from rich.console import Console

    from mailsniff.render import report as report_render
    from mailsniff.report import ReportOptions, write_report

    monkeypatch.setattr(report_render, "LANES_SHOWN", 1)
    monkeypatch.setattr(report_render, "PACKED_ROWS", 0)
    out = tmp_path / "lanes.html"
    options = ReportOptions(
        paths=(str(SEED),), output=str(out), command_line="test", progress=False
    )
    write_report(options, Console(stderr=True))
    seen = open_report(out)
    page = seen.page
    # lane 1: 192.168.1.100 (sessions 1, 2); lane 2 (222.177.8.218, session 3) not yet drawn
    assert count(page, "#timeline g.lane") == 1
    assert count(page, "#timeline rect.bar") == 2
    page.select_option("#f-proto", "smtp")
    page.click("button.showall[data-target=timeline]")
    page.wait_for_selector('#timeline rect.bar[data-s="s1-3"]')
    assert count(page, "#timeline g.lane") == 2
    assert page.get_attribute("#timeline", "height") == page.get_attribute(
        "#timeline", "data-h-all"
    )
    assert page.is_visible('#timeline rect.bar[data-s="s1-3"]')
    dimmed = page.eval_on_selector_all(
        "#timeline rect.bar.dimmed", "es => es.map(e => e.dataset.s)"
    )
    assert dimmed == ["s1-2"]  # the filter applies to the lanes just drawn too
    assert "show fewer" in page.inner_text("button.showall[data-target=timeline]")
    page.click("button.showall[data-target=timeline]")
    assert page.is_hidden('#timeline rect.bar[data-s="s1-3"]')
    assert_clean_load(seen, out)
