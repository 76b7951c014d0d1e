"""Standard output for the record streams: text and the --jobs workers' UTF-8 lines in order."""

from __future__ import annotations

import io

from rich.console import Console

from mailsniff.stdout import Stdout


def test_lines_written_as_bytes_follow_the_text_written_before_them() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    out = Stdout(Console(file=stream))
    out.write('{"type":"session","subject":"é"}\n')
    out.write_bytes('{"type":"session","subject":"ü"}\n'.encode())
    out.write('{"type":"summary"}\n')
    stream.flush()
    assert raw.getvalue().decode().splitlines() == [
        '{"type":"session","subject":"é"}',
        '{"type":"session","subject":"ü"}',
        '{"type":"summary"}',
    ]


def test_a_stream_of_text_only_gets_the_bytes_decoded() -> None:
    stream = io.StringIO()
    out = Stdout(Console(file=stream))
    out.write_bytes('{"subject":"ü"}\n'.encode())
    assert stream.getvalue() == '{"subject":"ü"}\n'
    assert out.error is None
