"""Defragmenter: completion in any order, the first-copy-wins overlap policy, bounds."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mailsniff.net.defrag import Defragmenter

KEY = (b"\x01" * 4, b"\x02" * 4, 6, 1)
DATA = bytes(range(256)) * 4  # 1024 bytes


def _pieces(sizes: list[int]) -> list[tuple[int, bytes, bool]]:
    out, offset = [], 0
    for size in sizes:
        out.append((offset, DATA[offset : offset + size], offset + size < len(DATA)))
        offset += size
    return out


def test_defragmenter_rebuilds_the_datagram_in_every_arrival_order():
    pieces = _pieces([256, 256, 256, 256])
    for order in itertools.permutations(pieces):
        defrag = Defragmenter()
        results = [defrag.add(0, KEY, off, more, data) for off, data, more in order]
        assert results[:-1] == [None, None, None]
        assert results[-1] == DATA
        assert (defrag.reassembled, defrag.pending) == (1, 0)


@given(st.permutations(list(range(8))), st.integers(0, 2**32))
def test_defragmenter_result_does_not_depend_on_order_or_duplicates(order, seed):
    pieces = _pieces([128] * 8)
    defrag = Defragmenter()
    results = []
    for i in order:
        off, data, more = pieces[i]
        results.append(defrag.add(0, KEY, off, more, data))
        if seed % 3 == 0:  # an exact duplicate arrives too
            results.append(defrag.add(0, KEY, off, more, data))
    assert [r for r in results if r is not None] == [DATA]


def test_defragmenter_keeps_the_first_copy_of_overlapping_bytes():
    defrag = Defragmenter()
    assert defrag.add(0, KEY, 8, True, b"B" * 16) is None  # bytes 8-24 first as B
    assert defrag.add(0, KEY, 0, True, b"A" * 16) is None  # 8-16 overlap: B stays
    assert defrag.add(0, KEY, 16, False, b"C" * 16) == b"A" * 8 + b"B" * 16 + b"C" * 8


def test_defragmenter_keeps_the_first_last_fragment_length():
    defrag = Defragmenter()
    assert defrag.add(0, KEY, 8, False, b"x" * 8) is None  # says: 16 bytes in all
    assert defrag.add(0, KEY, 8, False, b"y" * 24) is None  # a later, longer claim: ignored
    assert defrag.add(0, KEY, 0, True, b"z" * 8) == b"z" * 8 + b"x" * 8


def test_defragmenter_keeps_datagrams_with_different_keys_apart():
    other = (b"\x01" * 4, b"\x02" * 4, 6, 2)
    defrag = Defragmenter()
    defrag.add(0, KEY, 0, True, b"a" * 8)
    defrag.add(0, other, 0, True, b"b" * 8)
    assert defrag.add(0, other, 8, False, b"B") == b"b" * 8 + b"B"
    assert defrag.add(0, KEY, 8, False, b"A") == b"a" * 8 + b"A"


def test_defragmenter_expires_sets_older_than_the_timeout():
    defrag = Defragmenter(timeout_ns=100)
    defrag.add(0, KEY, 0, True, b"a" * 8)
    defrag.add(0, KEY, 16, True, b"a" * 8)
    assert defrag.add(101, KEY, 8, False, b"b" * 8) is None  # the set expired first
    assert (defrag.expired, defrag.dropped, defrag.pending) == (1, 2, 1)


def test_defragmenter_does_not_expire_a_set_within_the_timeout():
    defrag = Defragmenter(timeout_ns=100)
    defrag.add(0, KEY, 0, True, b"a" * 8)
    assert defrag.add(100, KEY, 8, False, b"b") == b"a" * 8 + b"b"


def test_defragmenter_bounds_the_number_of_pending_sets():
    defrag = Defragmenter(max_sets=3)
    for ident in range(10):
        defrag.add(ident, (b"s", b"d", 6, ident), 0, True, b"x" * 8)
    assert defrag.pending == 3
    assert (defrag.evicted, defrag.dropped) == (7, 7)


def test_defragmenter_drops_a_datagram_larger_than_the_limit():
    defrag = Defragmenter(max_bytes=1000)
    defrag.add(0, KEY, 0, True, b"x" * 8)
    assert defrag.add(0, KEY, 996, False, b"y" * 8) is None
    assert (defrag.oversized, defrag.dropped, defrag.pending) == (1, 2, 0)


def test_defragmenter_flush_counts_what_never_completed():
    defrag = Defragmenter()
    defrag.add(0, KEY, 0, True, b"x" * 8)
    defrag.flush()
    assert (defrag.pending, defrag.dropped) == (0, 1)
