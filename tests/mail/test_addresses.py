"""Address lists from forged and malformed headers: the seed's To and From, groups, comments."""

from __future__ import annotations

from email.utils import formataddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsniff.mail.addresses import (
    MAX_ADDRESSES,
    parse_address_header,
    parse_address_list,
)
from mailsniff.model import Address


def addrs(text: str) -> list[tuple[str, str]]:
    return [(a.name, a.address) for a in parse_address_list(text)[0]]


def test_seed_to_with_stray_colon_is_zhang_fan_at_tonanme() -> None:
    found, defects = parse_address_list("=?GBK?B?1cW3qw==?= :<tonanme@them.com>")
    assert found == [Address("张帆", "tonanme@them.com")]
    assert defects == ["stray ':' between display name and address"]


def test_seed_from_with_gbk_name() -> None:
    assert parse_address_list(" =?GBK?B?1cW3qw==?= <name@youname.com>") == (
        [Address("张帆", "name@youname.com")],
        [],
    )


def test_seed_bare_address() -> None:
    assert addrs(" cccc@163.com") == [("", "cccc@163.com")]


def test_quoted_display_name_with_comma_is_one_mailbox() -> None:
    assert addrs('"Doe, John" <j@x.org>, b@y.org') == [("Doe, John", "j@x.org"), ("", "b@y.org")]


def test_quoted_name_with_escapes() -> None:
    assert addrs(r'"A \"quoted\" \\ name" <a@x>') == [('A "quoted" \\ name', "a@x")]


def test_undisclosed_recipients_group_yields_nothing_and_no_defect() -> None:
    assert parse_address_list("undisclosed-recipients:;") == ([], [])


def test_group_members_are_returned_without_the_group_name() -> None:
    assert addrs("team: a@x, Bee <b@y>; c@z") == [("", "a@x"), ("Bee", "b@y"), ("", "c@z")]


def test_unterminated_group_still_yields_its_members() -> None:
    found, defects = parse_address_list("team: a@x, b@y")
    assert [a.address for a in found] == ["a@x", "b@y"]
    assert "group not terminated by ';'" in defects


def test_comment_after_bare_address_is_the_name() -> None:
    assert addrs("john@x.org (John Doe)") == [("John Doe", "john@x.org")]


def test_comments_inside_a_mailbox_are_not_part_of_name_or_address() -> None:
    assert addrs("John (the boss) <john@x.org> (work)") == [("John", "john@x.org")]
    assert addrs("(nested (comment)) a@x") == [("nested (comment)", "a@x")]


def test_rfc2047_name_with_specials_inside_the_word() -> None:
    assert addrs("=?utf-8?Q?Doe,_John_<boss>?= <j@x>") == [("Doe, John <boss>", "j@x")]


def test_adjacent_encoded_words_in_a_name_join() -> None:
    assert addrs("=?utf-8?B?5byg?= =?utf-8?B?5biG?= <z@x>") == [("张帆", "z@x")]


def test_utf8_and_idn_addresses_are_kept_as_written() -> None:
    assert addrs("José <josé@bücher.de>, <user@xn--bcher-kva.de>") == [
        ("José", "josé@bücher.de"),
        ("", "user@xn--bcher-kva.de"),
    ]


def test_raw_utf8_header_bytes() -> None:
    assert parse_address_header("张帆 <zf@例子.中国>".encode()) == (
        [Address("张帆", "zf@例子.中国")],
        [],
    )


def test_obsolete_source_route_is_dropped() -> None:
    assert addrs("<@relay1,@relay2:a@x>") == [("", "a@x")]


def test_obsolete_whitespace_around_at_sign() -> None:
    assert addrs("john @ example.org") == [("", "john@example.org")]


def test_quoted_local_part_keeps_its_quotes() -> None:
    assert addrs('"john doe"@example.org') == [("", '"john doe"@example.org')]


def test_empty_entries_are_skipped() -> None:
    assert addrs(" , a@x,, ,b@y,") == [("", "a@x"), ("", "b@y")]


def test_folded_header() -> None:
    assert addrs("Alice <a@x>,\r\n\tBob\r\n <b@y>") == [("Alice", "a@x"), ("Bob", "b@y")]


@pytest.mark.parametrize(
    ("text", "expected", "defect"),
    [
        ("<a@x", [("", "a@x")], "unterminated '<'"),
        ('"Unclosed <a@x>', [("", '"Unclosed <a@x>"')], "unterminated quoted string"),
        ("a@x (open", [("open", "a@x")], "unterminated comment"),
        ("<a@x> trailing", [("", "a@x")], "text after angle address ignored: 'trailing'"),
        ("John Smith", [("", "John Smith")], "no address in mailbox 'John Smith'"),
        ("a@x>", [("", "a@x")], "stray '>' in address list"),
    ],
)
def test_malformed_lists_give_what_can_be_read_and_a_defect(
    text: str, expected: list[tuple[str, str]], defect: str
) -> None:
    found, defects = parse_address_list(text)
    assert [(a.name, a.address) for a in found] == expected
    assert defect in defects


def test_address_count_is_bounded() -> None:
    found, defects = parse_address_list(", ".join(f"u{i}@x" for i in range(MAX_ADDRESSES + 50)))
    assert len(found) == MAX_ADDRESSES
    assert f"more than {MAX_ADDRESSES} addresses: the rest dropped" in defects


@given(st.text(max_size=300))
def test_any_text_parses_without_raising(text: str) -> None:
    found, defects = parse_address_list(text)
    assert all(isinstance(a, Address) for a in found)
    assert all(isinstance(d, str) for d in defects)


@given(st.binary(max_size=300))
def test_any_bytes_parse_without_raising(raw: bytes) -> None:
    parse_address_header(raw)


_tricky = st.lists(st.sampled_from(list('<>(),;:"\\@ =?.') + ["=?utf-8?Q?", "?="]), max_size=40)


@given(_tricky)
def test_specials_soup_parses_without_raising(pieces: list[str]) -> None:
    parse_address_list("".join(pieces))


_local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
_name = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20
).map(lambda s: " ".join(s.split()))


@given(st.lists(st.tuples(_name, _local, _local), min_size=1, max_size=8))
def test_lists_formatted_by_the_stdlib_parse_back(
    people: list[tuple[str, str, str]],
) -> None:
    expected = [(name, f"{local}@{domain}") for name, local, domain in people]
    header = ", ".join(formataddr(pair, charset="utf-8") for pair in expected)
    assert addrs(header) == expected


def test_words_apart_in_the_header_stay_apart_in_the_address() -> None:
    found, defects = parse_address_list("admin@example.net\r\n    Python email test")
    assert [(a.name, a.address) for a in found] == [("", "admin@example.net")]
    assert "text beside address ignored: 'Python email test'" in defects


def test_colon_after_an_address_does_not_start_a_group() -> None:
    found, defects = parse_address_list("admin@example.net To: bob@example.org")
    assert [a.address for a in found] == ["admin@example.net", "bob@example.org"]
    assert "unexpected ':' after an address" in defects


def test_addresses_without_a_comma_are_both_kept() -> None:
    found, defects = parse_address_list("a@x b@y")
    assert [a.address for a in found] == ["a@x", "b@y"]
    assert "no ',' between addresses 'a@x b@y'" in defects
