"""``trace_per="turn"``: each exchange one trace, its root covering the utterance and the reply.

The root of an exchange's trace is the reply's ``agent_turn``, started where the utterance it
answers started; the ``user_turn`` is its child. Pipeline and realtime sessions alike: no
span starts before the root of its trace, and every child lies within its parent.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from livekit_otel_dev.realtime import RealtimeTurn, ScriptedRealtimeModel, run_realtime_session
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry.sdk.trace import ReadableSpan

from support.tracing import SpanTree, instrumented

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})


def _pipeline() -> SpanTree:
    script = [UserTurn("hello there"), UserTurn("what is the weather", reply=WEATHER)]
    with instrumented(trace_per="turn") as tracing:
        asyncio.run(run_scripted_session(script, mode="audio"))
        return tracing.tree()


def _realtime() -> SpanTree:
    script = [
        RealtimeTurn("what is the weather", reply=WEATHER, follow_up="Sunny.", transcript="after"),
        RealtimeTurn("thanks"),
    ]
    model = ScriptedRealtimeModel(silence_duration_ms=100)
    with instrumented(trace_per="turn") as tracing:
        asyncio.run(run_realtime_session(script, model=model))
        return tracing.tree()


def _roots(tree: SpanTree) -> dict[int, ReadableSpan]:
    return {span.context.trace_id: span for span in tree.spans if span.parent is None}


def _started_before_their_root(tree: SpanTree) -> list[str]:
    roots = _roots(tree)
    return [
        f"{span.name} before {roots[span.context.trace_id].name}"
        for span in tree.spans
        if (span.start_time or 0) < (roots[span.context.trace_id].start_time or 0)
    ]


def _exchanges(tree: SpanTree) -> dict[int, list[str]]:
    names: dict[int, list[str]] = defaultdict(list)
    for span in tree.spans:
        names[span.context.trace_id].append(span.name)
    return {trace_id: spans for trace_id, spans in names.items() if "agent_session" not in spans}


def test_each_pipeline_exchange_is_a_trace_rooted_at_its_reply_holding_the_utterance() -> None:
    tree = _pipeline()
    exchanges = _exchanges(tree)
    assert len(exchanges) == 2
    roots = _roots(tree)
    for trace_id, names in exchanges.items():
        assert roots[trace_id].name == "agent_turn"
        assert names.count("user_turn") == 1


def test_no_pipeline_span_starts_before_the_root_of_its_trace() -> None:
    tree = _pipeline()
    assert _started_before_their_root(tree) == []
    assert tree.outside_parent() == []


def test_each_realtime_exchange_is_a_trace_rooted_at_its_reply_holding_the_utterance() -> None:
    tree = _realtime()
    roots = _roots(tree)
    assert sorted(root.name for root in roots.values()) == [
        "agent_session",
        "agent_turn",
        "agent_turn",
    ]
    for names in _exchanges(tree).values():
        assert names.count("user_turn") == 1


def test_no_realtime_span_starts_before_the_root_of_its_trace() -> None:
    tree = _realtime()
    assert _started_before_their_root(tree) == []
    assert tree.outside_parent() == []
