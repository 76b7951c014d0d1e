"""safe_text escapes what a terminal would obey; the formatters print times and sizes for people."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsniff.render.text import (
    format_clock,
    format_duration,
    format_size,
    format_timestamp,
    is_unsafe,
    safe_text,
    shorten,
)

BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def is_control_or_bidi(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or ch in BIDI or 0xD800 <= code <= 0xDFFF


def test_safe_text_leaves_printable_text_of_any_script_alone() -> None:
    for s in ("220 163.com Coremail SMTP(Anti Spam) System", "张帆 <name@youname.com>", "Ünïcødé"):
        assert safe_text(s) is s or safe_text(s) == s


def test_safe_text_keeps_rich_markup_as_plain_characters() -> None:
    assert safe_text("[bold red]x[/]") == "[bold red]x[/]"


def test_safe_text_escapes_esc_sequences_visibly() -> None:
    assert safe_text("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"


def test_safe_text_escapes_c0_del_and_c1_controls() -> None:
    assert safe_text("a\x00b\x07c\x7fd\x85e\x9bf") == "a\\x00b\\x07c\\x7fd\\x85e\\x9bf"


def test_safe_text_names_tab_cr_and_lf() -> None:
    assert safe_text("a\tb\r\nc") == "a\\tb\\r\\nc"


@pytest.mark.parametrize("ch", BIDI)
def test_safe_text_escapes_each_bidi_override_and_isolate(ch: str) -> None:
    assert safe_text(f"a{ch}b") == f"a\\u{ord(ch):04x}b"


def test_safe_text_escapes_the_trojan_source_address() -> None:
    # Shown naively this reads "admin@bank.com"-like text reversed; escaped it reads as sent.
    assert safe_text("evil\u202emoc.knab@nimda") == "evil\\u202emoc.knab@nimda"


def test_safe_text_escapes_line_separators_and_lone_surrogates() -> None:
    assert safe_text("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
    assert safe_text("x\udcffy") == "x\\udcffy"


def test_safe_text_leaves_backslashes_alone() -> None:
    assert safe_text("DOMAIN\\user") == "DOMAIN\\user"


def test_is_unsafe_agrees_with_the_escape_set() -> None:
    assert is_unsafe("\x1b") and is_unsafe("\u202e") and is_unsafe("\ud800")
    assert not is_unsafe("a") and not is_unsafe("张") and not is_unsafe(" ")


@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_safe_text_output_never_contains_a_control_or_bidi_character(s: str) -> None:
    out = safe_text(s)
    assert not any(is_control_or_bidi(ch) for ch in out)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in out)


@given(st.text(max_size=200))
def test_safe_text_changes_nothing_when_nothing_is_unsafe(s: str) -> None:
    if not any(is_unsafe(ch) for ch in s):
        assert safe_text(s) == s
    else:
        assert safe_text(s) != s


@given(st.text(alphabet=st.characters(max_codepoint=0x2100), max_size=100))
def test_safe_text_output_encodes_to_utf8(s: str) -> None:
    safe_text(s).encode("utf-8")  # no lone surrogate survives to the terminal


def test_shorten_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert shorten("crazywill", 20) == "crazywill"
    assert shorten("crazywill", 5) == "craz\u2026"
    assert len(shorten("x" * 100, 10)) == 10
    assert shorten("abc", 0) == ""


def test_format_timestamp_is_iso8601_utc_with_microseconds() -> None:
    assert format_timestamp(1_151_932_038_123_456_789) == "2006-07-03T13:07:18.123456Z"
    assert format_timestamp(1_151_932_038_999_999_999, micro=False) == "2006-07-03T13:07:18Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000000Z"


def test_format_timestamp_never_raises_on_absurd_values() -> None:
    assert format_timestamp(10**30).startswith("@")


def test_format_clock_is_time_of_day_with_microseconds() -> None:
    assert format_clock(1_151_932_038_123_456_789) == "13:07:18.123456"


@pytest.mark.parametrize(
    ("ns", "shown"),
    [
        (4_000_000, "0.004s"),
        (12_500_000_000, "12.5s"),
        (187 * 10**9, "3m07s"),
        (7500 * 10**9, "2h05m"),
        (-5, "0.000s"),
    ],
)
def test_format_duration_reads_naturally(ns: int, shown: str) -> None:
    assert format_duration(ns) == shown


@pytest.mark.parametrize(
    ("n", "shown"),
    [(354, "354 B"), (31_900, "31.2 KiB"), (27_676_669, "26.4 MiB"), (5 * 2**30, "5.0 GiB")],
)
def test_format_size_uses_binary_units(n: int, shown: str) -> None:
    assert format_size(n) == shown
