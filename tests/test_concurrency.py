"""Twenty sessions at once in one process: each gets its own trace, and nothing of another's.

The sessions run concurrently on one event loop (``asyncio.gather`` of scripted audio
sessions), each with its own session id set before it starts and turns that name it, so
any span, attribute or parent that strays into another session's trace shows.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel import update_session
from support.tracing import SpanTree, find_texts, input_of, instrumented

SESSIONS = 20
TURNS = 4


def session_id(index: int) -> str:
    return f"concurrent-{index:02d}"


def script(index: int) -> list[UserTurn]:
    """Turns that carry the session's own marker; every other turn calls a tool."""
    marker = session_id(index)
    turns: list[UserTurn] = []
    for turn in range(TURNS):
        text = f"{marker} says turn {turn}"
        if turn % 2:
            weather = ToolCall("lookup_weather", {"location": f"{marker}-city"})
            turns.append(UserTurn(text, reply=weather))
        else:
            turns.append(UserTurn(text))
    return turns


@dataclass
class Traces:
    """The spans of all sessions, grouped by trace id."""

    by_trace: dict[int, list[ReadableSpan]]

    def session_ids(self, spans: list[ReadableSpan]) -> set[Any]:
        return {(span.attributes or {}).get("session.id") for span in spans}


async def run_sessions() -> None:
    async def one(index: int) -> None:
        def name_it(session: Any) -> None:
            update_session(session, session_id=session_id(index))

        await run_scripted_session(script(index), mode="audio", on_session=name_it)

    await asyncio.gather(*(one(index) for index in range(SESSIONS)))


@pytest.fixture(scope="module")
def traces() -> Iterator[Traces]:
    with instrumented() as tracing:
        asyncio.run(run_sessions())
        grouped: dict[int, list[ReadableSpan]] = defaultdict(list)
        for span in tracing.exporter.get_finished_spans():
            assert span.context is not None
            grouped[span.context.trace_id].append(span)
        yield Traces(dict(grouped))


def test_twenty_concurrent_sessions_make_twenty_traces(traces: Traces) -> None:
    assert len(traces.by_trace) == SESSIONS


def test_each_trace_has_one_agent_session_root(traces: Traces) -> None:
    for spans in traces.by_trace.values():
        roots = [span.name for span in spans if span.parent is None]
        assert roots == ["agent_session"]


def test_every_span_carries_its_own_traces_session_id(traces: Traces) -> None:
    for spans in traces.by_trace.values():
        assert len(traces.session_ids(spans)) == 1
        assert None not in traces.session_ids(spans)


def test_every_session_id_has_its_own_trace(traces: Traces) -> None:
    found = sorted(next(iter(traces.session_ids(spans))) for spans in traces.by_trace.values())
    assert found == [session_id(index) for index in range(SESSIONS)]


def test_every_parent_is_in_the_same_trace(traces: Traces) -> None:
    for spans in traces.by_trace.values():
        assert SpanTree(spans).orphans() == []


def test_each_traces_agent_turns_carry_its_own_scripts_user_text(traces: Traces) -> None:
    for spans in traces.by_trace.values():
        (own,) = traces.session_ids(spans)
        index = int(str(own).rsplit("-", 1)[1])
        turns = sorted(
            (span for span in spans if span.name == "agent_turn"),
            key=lambda span: span.start_time or 0,
        )
        user_texts = [input_of(span) for span in turns]
        assert user_texts == [turn.text for turn in script(index)]


def test_no_trace_mentions_another_session(traces: Traces) -> None:
    for spans in traces.by_trace.values():
        (own,) = traces.session_ids(spans)
        others = [session_id(index) for index in range(SESSIONS) if session_id(index) != own]
        assert find_texts(spans, others) == []


def test_the_sessions_overlapped_in_time(traces: Traces) -> None:
    roots = [span for spans in traces.by_trace.values() for span in spans if span.parent is None]
    last_start = max(span.start_time or 0 for span in roots)
    first_end = min(span.end_time or 0 for span in roots)
    assert last_start < first_end
