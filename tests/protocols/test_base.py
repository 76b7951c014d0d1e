"""ReceiveBuffer: bounded lines, the same whatever the chunking; the dot-line search."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.protocols.base import Line, ReceiveBuffer, find_dot_line, to_text


def lines_of(chunks: list[bytes], max_line: int = 10) -> tuple[list[Line], bytes]:
    buf = ReceiveBuffer(max_line=max_line)
    out: list[Line] = []
    for chunk in chunks:
        buf.append(chunk)
        while (line := buf.take_line()) is not None:
            out.append(line)
    return out, buf.take_rest()


def test_receive_buffer_keeps_lines_after_an_overlong_one() -> None:
    lines, rest = lines_of([b"x" * 20 + b"\r\nnext\r\n"])
    assert lines == [Line(b"x" * 10, b"\r\n", overlong=10), Line(b"next", b"\r\n")]
    assert rest == b""


def test_receive_buffer_overlong_line_split_across_feeds_counts_every_dropped_byte() -> None:
    lines, _ = lines_of([b"x" * 15, b"y" * 7, b"\r", b"\nok\n"])
    assert lines == [Line(b"x" * 10, b"\r\n", overlong=12), Line(b"ok", b"\n")]


def test_receive_buffer_memory_is_bounded_without_newlines() -> None:
    buf = ReceiveBuffer(max_line=100)
    for _ in range(1000):
        buf.append(b"z" * 1000)
        assert buf.take_line() is None
        assert len(buf) <= 102
    buf.append(b"\n")
    line = buf.take_line()
    assert line is not None and line.overlong == 1000 * 1000 - 100


def test_receive_buffer_bare_lf_and_crlf() -> None:
    lines, rest = lines_of([b"a\nb\r\nc"])
    assert lines == [Line(b"a", b"\n"), Line(b"b", b"\r\n")]
    assert rest == b"c"


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=30))
def test_receive_buffer_lines_do_not_depend_on_chunking(data: bytes, cuts: list[int]) -> None:
    chunks, i = [], 0
    for n in cuts:
        chunks.append(data[i : i + n])
        i += n
    chunks.append(data[i:])
    assert lines_of(chunks) == lines_of([data]) == lines_of([bytes([b]) for b in data])


def test_to_text_never_raises_and_prefers_utf8() -> None:
    assert to_text("张帆".encode()) == "张帆"
    assert to_text(b"\xd5\xc5\xb7\xab") == "张帆"  # GBK, as Chinese servers send it
    assert to_text(b"cr\xe9\xe9e \xd5\xc5") == "cr\xe9\xe9e \xd5\xc5"  # latin-1, not 2 ideographs
    assert to_text(b"\xd5\xc5\xb7\xab\x80") == "\xd5\xc5\xb7\xab\x80"  # invalid GB18030


# Bodies made of the bytes that matter to the search: many dots not after a newline (past the
# point where it stops hopping from dot to dot), newlines, CRs and ordinary text.
_BODY_BYTES = st.lists(st.sampled_from([b".", b"\n", b"\r", b"a", b"..", b"a.b"]), max_size=80)


@given(_BODY_BYTES, st.integers(0, 120), st.integers(0, 120), st.booleans())
def test_find_dot_line_is_the_two_byte_search(
    pieces: list[bytes], start: int, end: int, mutable: bool
) -> None:
    """SMTP's and POP3's terminator and dot-unstuffing rest on it: any difference from
    `find(b"\\n.")` would end a message early or miss its end."""
    raw = b"".join(pieces)
    data = bytearray(raw) if mutable else raw
    end = min(end, len(data))
    assert find_dot_line(data, start, end) == data.find(b"\n.", start, end)


def test_find_dot_line_in_base64_and_in_text_with_many_dots() -> None:
    base64_body = b"QUJD" * 19 + b"\r\n"
    text = b"One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten.\r\n"
    for body in (base64_body * 50, text * 50):
        message = body + b".\r\n"
        assert find_dot_line(message, 0, len(message)) == len(body) - 1
        assert find_dot_line(body, 0, len(body)) == -1
    buf = ReceiveBuffer()
    buf.append(text * 3 + b"..stuffed\r\n")
    assert buf.find_dot_line() == len(text) * 3 - 1
