"""Test helpers: feed a sans-IO parser every way and insist the events do not change."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsniff.protocols.base import Direction

__all__ = ["Step", "feed_all_ways", "feed_steps", "normalize", "C", "S"]

C = Direction.CLIENT
S = Direction.SERVER

#: One step of a dialogue: bytes sent by a side, or (an int) that many bytes of it lost.
Step = tuple[Direction, bytes | int]


class Parser(Protocol):
    def feed(self, ts_ns: int, direction: Direction, data: bytes) -> list[Any]: ...
    def gap(self, ts_ns: int, direction: Direction, length: int) -> list[Any]: ...
    def close(self, ts_ns: int) -> list[Any]: ...


def normalize(events: Iterable[Any], mergeable: tuple[type, ...]) -> list[Any]:
    """Join adjacent events of a `mergeable` type (content chunks depend on how bytes arrive)."""
    out: list[Any] = []
    for ev in events:
        if out and isinstance(ev, mergeable) and type(out[-1]) is type(ev):
            prev = out[-1]
            out[-1] = dataclasses.replace(prev, data=prev.data + ev.data, raw=prev.raw + ev.raw)
        else:
            out.append(ev)
    return out


def feed_steps(
    make: Callable[[], Parser],
    steps: Sequence[Step],
    cuts: Callable[[int, bytes], Sequence[bytes]] = lambda i, b: [b],
    close: bool = True,
) -> list[Any]:
    """Run `steps` through a new parser; step i has timestamp i * 1000 and is cut by `cuts`."""
    p = make()
    events: list[Any] = []
    for i, (direction, item) in enumerate(steps):
        ts = i * 1000
        if isinstance(item, int):
            events += p.gap(ts, direction, item)
            continue
        for piece in cuts(i, item):
            events += p.feed(ts, direction, piece)
    if close:
        events += p.close(len(steps) * 1000)
    return events


def _split_at(data: bytes, points: Sequence[int]) -> list[bytes]:
    bounds = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [data]


def feed_all_ways(
    make: Callable[[], Parser],
    steps: Sequence[Step],
    mergeable: tuple[type, ...] = (),
    close: bool = True,
    examples: int = 25,
) -> list[Any]:
    """Feed `steps` whole, byte by byte and at Hypothesis-chosen splits; the events must match.

    Content-chunk events of the `mergeable` types are joined before comparing (h11's
    normalize_data_events). Returns the (normalized) events of the whole feed.
    """
    whole = normalize(feed_steps(make, steps, close=close), mergeable)
    by_byte = normalize(
        feed_steps(make, steps, lambda i, b: [b[k : k + 1] for k in range(len(b))], close),
        mergeable,
    )
    assert by_byte == whole, "byte-by-byte feeding changed the events"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.lists(st.integers(0, 1 << 16), max_size=6), min_size=len(steps)))
    def split_anywhere(points: list[list[int]]) -> None:
        got = feed_steps(make, steps, lambda i, b: _split_at(b, points[i]), close)
        assert normalize(got, mergeable) == whole, "splitting the bytes changed the events"

    split_anywhere()
    return whole
