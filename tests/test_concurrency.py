"""Fifty sessions at once in one process: each gets its own trace, nothing of another's,
and the same conversation as without tracing.

The sessions run concurrently on one event loop (``asyncio.gather`` of scripted audio
sessions), traced with spans, metrics (a meter provider built as setup builds it) and
content capture, each with its own session id set before it starts and turns that name it,
so any span, attribute or parent that strays into another session's trace shows. The same
fifty scripts run first untraced, concurrently too; their histories are the reference.
The time a traced turn takes next to an untraced one is the bench's to measure
(``bench/run.py --concurrent``), not a test's.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel import update_session
from livekit_otel.setup.exporters import meter_provider_without_exemplars
from support.tracing import SpanTree, find_texts, input_of, instrumented

SESSIONS = 50
TURN_TIMEOUT_S = 60.0
"""A hang guard, not a measurement: fifty sessions share one event loop, and on a busy
machine one of them waited more than the kit's default 10 s for a reply."""
TURNS = 4
HISTORY_KEYS = ("type", "role", "content", "name", "arguments", "output", "is_error")
"""What a history item says, without its ids and times."""


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
    """The spans of all sessions, grouped by trace id; each session's conversation, traced
    and untraced; the metrics recorded."""

    by_trace: dict[int, list[ReadableSpan]]
    traced_histories: list[list[list[Any]]]
    untraced_histories: list[list[list[Any]]]
    turns_counted: float
    """The sum of the ``lk.turns`` counter over every data point."""

    def session_ids(self, spans: list[ReadableSpan]) -> set[Any]:
        return {(span.attributes or {}).get("session.id") for span in spans}


def stable(history: list[dict[str, Any]]) -> list[list[Any]]:
    return [[item.get(key) for key in HISTORY_KEYS] for item in history]


async def run_sessions() -> list[list[list[Any]]]:
    """Every script at once; each session's history, in script order."""

    async def one(index: int) -> list[list[Any]]:
        def name_it(session: Any) -> None:
            update_session(session, session_id=session_id(index))

        run = await run_scripted_session(
            script(index), mode="audio", on_session=name_it, turn_timeout=TURN_TIMEOUT_S
        )
        return stable(run.history)

    return list(await asyncio.gather(*(one(index) for index in range(SESSIONS))))


@pytest.fixture(scope="module")
def traces() -> Iterator[Traces]:
    untraced = asyncio.run(run_sessions())
    reader = InMemoryMetricReader()
    meter_provider = meter_provider_without_exemplars([reader])
    with instrumented(meter_provider=meter_provider) as tracing:
        traced = asyncio.run(run_sessions())
        grouped: dict[int, list[ReadableSpan]] = defaultdict(list)
        for span in tracing.exporter.get_finished_spans():
            assert span.context is not None
            grouped[span.context.trace_id].append(span)
        data = reader.get_metrics_data()
        turns_counted = sum(
            point.value
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "lk.turns"
            for point in metric.data.data_points
        )
        yield Traces(dict(grouped), traced, untraced, turns_counted)
    meter_provider.shutdown()


def test_fifty_concurrent_sessions_make_fifty_traces(traces: Traces) -> None:
    assert len(traces.by_trace) == SESSIONS


def test_each_sessions_conversation_is_the_same_as_untraced(traces: Traces) -> None:
    assert traces.traced_histories == traces.untraced_histories


def test_the_conversations_are_the_scripts(traces: Traces) -> None:
    for index, history in enumerate(traces.untraced_histories):
        user_texts = [item[2] for item in history if item[1] == "user"]
        assert user_texts == [[turn.text] for turn in script(index)]


def test_every_sessions_turns_are_counted_once_in_the_metrics(traces: Traces) -> None:
    assert traces.turns_counted == SESSIONS * TURNS


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
