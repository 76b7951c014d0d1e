"""RFC 2047 encoded words: the seed's GBK name, arkime's subject captures, split characters."""

from __future__ import annotations

import base64
import json
from email.header import Header

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsniff.mail import rfc2047
from mailsniff.mail.rfc2047 import (
    decode_header_bytes,
    decode_raw_header,
    decode_words,
    normalize_charset,
)
from tests.paths import PUBLIC
from tests.pcap_streams import client_stream


def header_value(stream: bytes, name: bytes) -> bytes:
    """Raw value of the first `name:` field in the stream, continuation lines included."""
    start = stream.lower().index(b"\n" + name.lower() + b":") + len(name) + 2
    lines = stream[start:].split(b"\n")
    value = [lines[0]]
    for line in lines[1:]:
        if not line.startswith((b" ", b"\t")):
            break
        value.append(line)
    return b"\n".join(value).rstrip(b"\r")


def arkime_subject(name: str) -> str:
    record = json.loads((PUBLIC / "arkime" / f"{name}.arkime.test.json").read_text("utf-8"))
    subjects: list[str] = record["sessions3"][0]["body"]["email"]["subject"]
    return subjects[0]


def b_word(charset: str, data: bytes) -> str:
    return f"=?{charset}?B?{base64.b64encode(data).decode('ascii')}?="


@pytest.mark.parametrize(
    "capture",
    [
        "smtp-subject-8859-q",
        "smtp-subject-encoded-empty",
        "smtp-subject-gb2312-b",
        "smtp-subject-utf8-mixed",
        "smtp-subject-windows",
    ],
)
def test_subjects_of_arkime_captures_decode_as_arkime_reports(capture: str) -> None:
    raw = header_value(client_stream(PUBLIC / "arkime" / f"{capture}.pcap"), b"Subject")
    text, _ = decode_header_bytes(raw)
    assert text == arkime_subject(capture)


def test_windows_1252_fallback_is_recorded_as_a_defect() -> None:
    raw = header_value(client_stream(PUBLIC / "arkime" / "smtp-subject-windows.pcap"), b"Subject")
    assert b"\x92" in raw
    text, defects = decode_header_bytes(raw)
    assert "What\u2019s" in text
    assert defects == ["8-bit header bytes not UTF-8: decoded as windows-1252"]


def test_unlabelled_gbk_header_bytes_read_as_chinese() -> None:
    text, defects = decode_header_bytes(" 测试邮件 from 张帆".encode("gbk"))
    assert text == "测试邮件 from 张帆"
    assert defects == ["8-bit header bytes not UTF-8: decoded as GB18030"]
    # latin-1 words with accented letters side by side stay windows-1252
    text, defects = decode_header_bytes(" cr\xe9\xe9e \xe0\xe9".encode("latin-1"))
    assert text == "cr\xe9\xe9e \xe0\xe9"
    assert defects == ["8-bit header bytes not UTF-8: decoded as windows-1252"]


def test_seed_gbk_word_is_zhang_fan() -> None:
    assert decode_words("=?GBK?B?1cW3qw==?=") == ("张帆", [])


def test_gb2312_label_is_decoded_as_gb18030() -> None:
    assert decode_words("=?gb2312?B?dGVzdCCy4srU?=")[0] == "test 测试"
    # a GBK-only character (U+9555) under a GB2312 label, as real mail sends it
    assert decode_words(b_word("gb2312", "镕".encode("gbk")))[0] == "镕"
    assert normalize_charset("GBK") == normalize_charset("gb2312") == "gb18030"


def test_multibyte_character_split_across_two_words_is_rejoined() -> None:
    zhang = "张".encode()
    assert len(zhang) == 3
    header = f"{b_word('UTF-8', zhang[:2])}\r\n {b_word('utf-8', zhang[2:])}"
    assert decode_words(header) == ("张", [])


def test_split_character_across_gbk_and_gb2312_labels_is_rejoined() -> None:
    data = "张帆".encode("gbk")
    assert decode_words(b_word("GBK", data[:1]) + " " + b_word("GB2312", data[1:]))[0] == "张帆"


def test_utf8_b_and_q_words_mixed() -> None:
    header = "=?utf-8?B?5rWL6K+V?= =?UTF-8?Q?_caf=C3=A9?= and =?utf-8?q?na=C3=AFve?="
    assert decode_words(header)[0] == "测试 café and naïve"


def test_iso_2022_jp() -> None:
    assert decode_words("=?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=")[0] == "日本語"


def test_q_underscore_is_space_and_literal_whitespace_to_text_is_kept() -> None:
    assert decode_words("=?iso-8859-1?Q?a_b?=  plain")[0] == "a b  plain"


def test_whitespace_between_adjacent_words_is_dropped_even_when_folded() -> None:
    assert decode_words("=?utf-8?Q?a?=\r\n\t =?utf-8?Q?b?=")[0] == "ab"


def test_words_of_different_charsets_next_to_each_other() -> None:
    header = "=?iso-8859-1?Q?=E9?= =?koi8-r?B?8NLJ18XU?="
    assert decode_words(header)[0] == "éПривет"


def test_empty_payload_word_is_nothing() -> None:
    assert decode_words("=?ISO-8859-1?B??=x")[0] == "x"
    assert decode_words("a =?ISO-8859-1?Q??= b")[0] == "a  b"


def test_rfc2231_language_tag_in_charset() -> None:
    assert decode_words("=?utf-8*en?Q?hello?=")[0] == "hello"


def test_unknown_charset_is_latin1_with_a_defect() -> None:
    text, defects = decode_words("=?x-klingon?Q?caf=E9?=")
    assert text == "café"
    assert defects == ["unknown charset 'x-klingon': decoded as latin-1"]


@pytest.mark.parametrize("label", ["base64", "zlib", "rot13", "idna", "hex"])
def test_non_text_codecs_are_not_charsets(label: str) -> None:
    assert normalize_charset(label) is None
    text, defects = decode_words(f"=?{label}?Q?abc?=")
    assert text == "abc"
    assert defects


@pytest.mark.parametrize(
    "header",
    [
        "=?utf-8?B?!!!!?=",  # nothing base64 in it
        "=?utf-8?X?abc?=",  # unknown encoding
        "=?utf-8?Q?abc",  # unterminated
        "=??Q?abc?=",  # no charset
        "=?utf-8?Q?a b?=",  # space inside the word
    ],
)
def test_malformed_words_are_left_as_literal_text(header: str) -> None:
    assert decode_words(header)[0] == header


def test_base64_without_padding_is_tolerated() -> None:
    assert decode_words("=?utf-8?B?5byg5biG?=")[0] == "张帆"
    assert decode_words("=?utf-8?B?5byg5bi?=")[0].startswith("张")


def test_invalid_bytes_for_the_charset_are_replaced_and_recorded() -> None:
    text, defects = decode_words("=?utf-8?Q?ok=FF?=")
    assert text == "ok\ufffd"
    assert defects == ["bytes invalid in charset 'utf-8'"]


def test_iso_8859_1_label_is_read_as_windows_1252_without_losing_bytes() -> None:
    assert decode_words("=?iso-8859-1?Q?=93caf=E9=94_=81?=") == ("\u201ccafé\u201d \x81", [])


def test_raw_utf8_header_bytes_need_no_fallback() -> None:
    assert decode_raw_header("张帆 <a@b>".encode()) == ("张帆 <a@b>", [])


def test_bytes_windows_1252_leaves_undefined_become_latin1() -> None:
    text, defects = decode_raw_header(b"a\x81b\x93c\x94")
    assert text == "a\x81b\u201cc\u201d"
    assert defects


@given(st.text(max_size=200))
def test_any_text_decodes_without_raising(text: str) -> None:
    decoded, defects = decode_words(text)
    assert isinstance(decoded, str)
    assert all(isinstance(d, str) for d in defects)


_piece = st.sampled_from(["=?", "?=", "?B?", "?Q?", "utf-8", "gbk", "x", "==", " ", "\r\n ", "_"])


@given(st.lists(st.one_of(_piece, st.text(max_size=5)), max_size=30))
def test_word_shaped_garbage_decodes_without_raising(pieces: list[str]) -> None:
    decode_words("".join(pieces))


@given(st.binary(max_size=300))
def test_any_header_bytes_decode_without_raising(raw: bytes) -> None:
    text, _ = decode_header_bytes(raw)
    assert isinstance(text, str)


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=60), st.lists(st.integers(0, 200), max_size=6))
def test_utf8_bytes_cut_anywhere_into_b_words_decode_to_the_original(
    text: str, cuts: list[int]
) -> None:
    data = text.encode("utf-8", errors="surrogatepass")
    if "\r" in text or "\n" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    words = [b_word("utf-8", data[a:b]) for a, b in zip(points, points[1:], strict=False)]
    assert decode_words("\r\n ".join(words))[0] == text


@settings(max_examples=200)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120),
    st.sampled_from(["utf-8", "gb18030", "iso-2022-jp", "shift_jis", "iso-8859-1"]),
)
def test_headers_encoded_by_the_stdlib_decode_back(text: str, charset: str) -> None:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        return
    encoded = Header(text, charset, maxlinelen=76).encode()
    decoded, defects = decode_words(encoded)
    assert decoded == text
    assert defects == []


def _q_reference(raw: bytes) -> bytes:
    """Q decoding written out: '_' is a space, =XX (either case) a byte, other '=' kept."""
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b"=" and all(
            c in b"0123456789abcdefABCDEF" for c in raw[i + 1 : i + 3]
        ):
            if len(raw[i + 1 : i + 3]) == 2:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
        out += b" " if raw[i : i + 1] == b"_" else raw[i : i + 1]
        i += 1
    return bytes(out)


@settings(max_examples=1000)
@given(
    st.lists(st.sampled_from([b"=", b"_", b"a", b"F", b"f", b"0", b"9", b"G", b"\x80", b"\xe9"]))
)
def test_q_decoding_matches_the_written_out_rule(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    assert rfc2047._q_decode(raw) == _q_reference(raw)


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"a", b" ", b"\t", b"=", b"?", b"=?utf-8?q?x?=", b"\r\n ", b"\n"]))
)
def test_ascii_header_values_decode_as_their_text_does(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    text, defects = decode_words(raw.decode("ascii"))
    assert decode_header_bytes(raw) == (text.strip(" \t"), defects)
