"""One clock: every span's start and end come from ``time.time()``, faked or not.

LiveKit's newer tests (and freezegun, time-machine) replace ``time.time`` with a virtual
clock; LiveKit then dates its events by it. A session run under such a clock must give
spans that start and end on that clock: none ends before it starts, every child lies within
its parent, and all of them are dated on the virtual clock, not the machine's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from livekit_otel_dev.realtime import RealtimeReply, RealtimeTurn, run_realtime_session
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session

from support.tracing import SpanTree, instrumented

VIRTUAL_START = 1_700_000_000.0  # where LiveKit's tests/virtual_time.py starts its clock
WEATHER = ToolCall("lookup_weather", {"location": "Paris"})


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[float, float]]:
    """``time.time`` runs from 1,700,000,000 at the real pace; yields the virtual range."""
    origin = time.perf_counter()
    monkeypatch.setattr(time, "time", lambda: VIRTUAL_START + (time.perf_counter() - origin))
    yield VIRTUAL_START, VIRTUAL_START + 600


def _on_the_virtual_clock(tree: SpanTree, bounds: tuple[float, float]) -> list[str]:
    low, high = bounds
    return [
        span.name
        for span in tree.spans
        if not (low * 1e9 <= (span.start_time or 0) <= (span.end_time or 0) <= high * 1e9)
    ]


def _run_pipeline() -> SpanTree:
    script = [UserTurn("hello there"), UserTurn("what is the weather", reply=WEATHER)]
    with instrumented() as tracing:
        asyncio.run(run_scripted_session(script, mode="audio"))
        return tracing.tree()


def _run_realtime() -> SpanTree:
    script = [
        RealtimeTurn("what is the weather", reply=WEATHER, follow_up="Sunny."),
        RealtimeTurn("tell me a story", reply=RealtimeReply("Once " * 40, until_interrupted=True)),
        RealtimeTurn("never mind"),
    ]
    with instrumented() as tracing:
        asyncio.run(run_realtime_session(script, greeting="Hello!"))
        return tracing.tree()


def test_a_pipeline_session_under_a_virtual_clock_has_every_span_on_that_clock(
    virtual_clock: tuple[float, float],
) -> None:
    tree = _run_pipeline()
    assert len(tree) > 5
    assert _on_the_virtual_clock(tree, virtual_clock) == []


def test_a_pipeline_session_under_a_virtual_clock_keeps_every_child_within_its_parent(
    virtual_clock: tuple[float, float],
) -> None:
    tree = _run_pipeline()
    assert tree.outside_parent() == []


def test_a_realtime_session_under_a_virtual_clock_has_every_span_on_that_clock(
    virtual_clock: tuple[float, float],
) -> None:
    tree = _run_realtime()
    assert tree.named("realtime_response")
    assert _on_the_virtual_clock(tree, virtual_clock) == []


def test_a_realtime_session_under_a_virtual_clock_keeps_every_child_within_its_parent(
    virtual_clock: tuple[float, float],
) -> None:
    tree = _run_realtime()
    assert tree.outside_parent() == []
