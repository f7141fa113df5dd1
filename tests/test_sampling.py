"""Trace sampling keeps or drops whole calls, and the metrics count every call.

``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` shape the provider the SDK builds
(``setup_otlp``'s too); here they build the test's in-memory provider. Scripted calls run
one after the other; a call's spans are all exported or none (with ``trace_per="turn"``,
each exchange's), and the metrics count every call whatever was sampled. The expected
shape of a call comes from the same script traced unsampled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from livekit_otel import LiveKitAgentsInstrumentor
from support.tracing import SpanTree, Tracing, attributes

TURNS = [
    UserTurn("hello there"),
    UserTurn("what is the weather", reply=ToolCall("lookup_weather", {"location": "Paris"})),
]
CALLS = 16  # at a ratio of 0.5, all kept or all dropped: 2 chances in 65,536


def counted(reader: InMemoryMetricReader, name: str) -> float:
    """The sum of a counter's points, or a histogram's count, over all attributes."""
    data = reader.get_metrics_data()
    total = 0.0
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        total += getattr(point, "value", None) or getattr(point, "count", 0)
    return total


async def run_calls(tracing: Tracing, calls: int) -> None:
    for _ in range(calls):
        await run_scripted_session(TURNS, mode="audio")
    tracing.provider.force_flush()


def by_session(tree: SpanTree) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in tree:
        found.setdefault(str(attributes(span)["session.id"]), []).append(span)
    return found


def by_trace(tree: SpanTree) -> dict[int, list[ReadableSpan]]:
    found: dict[int, list[ReadableSpan]] = {}
    for span in tree:
        assert span.context is not None
        found.setdefault(span.context.trace_id, []).append(span)
    return found


def shape(spans: list[ReadableSpan]) -> Counter[str]:
    return Counter(span.name for span in spans)


async def test_the_environment_sampler_keeps_or_drops_whole_calls_and_metrics_count_all(
    instrument: Callable[..., Tracing], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = instrument()
    await run_calls(reference, 1)
    (whole_call,) = (shape(spans) for spans in by_session(reference.tree()).values())
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    reader = InMemoryMetricReader()
    sampled = instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    assert isinstance(sampled.provider.sampler, ParentBased)  # the SDK read the variables

    await run_calls(sampled, CALLS)

    kept = by_session(sampled.tree())
    assert 0 < len(kept) < CALLS
    assert all(shape(spans) == whole_call for spans in kept.values())
    assert sampled.tree().orphans() == []
    assert counted(reader, "lk.turns") == CALLS * len(TURNS)
    assert counted(reader, "lk.turn.perceived_latency") == CALLS * len(TURNS)


async def test_a_sampler_on_your_own_provider_keeps_or_drops_whole_calls(
    instrument: Callable[..., Tracing],
) -> None:
    reference = instrument()
    await run_calls(reference, 1)
    (whole_call,) = (shape(spans) for spans in by_session(reference.tree()).values())
    reference.instrumentor.uninstrument()
    exporter = InMemorySpanExporter()
    # not parent-based: each span decides by its trace id, so a call's spans decide alike
    provider = TracerProvider(sampler=TraceIdRatioBased(0.5))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    LiveKitAgentsInstrumentor().instrument(tracer_provider=provider)
    try:
        for _ in range(CALLS):
            await run_scripted_session(TURNS, mode="audio")
    finally:
        LiveKitAgentsInstrumentor().uninstrument()

    kept = by_session(SpanTree(exporter.get_finished_spans()))
    assert 0 < len(kept) < CALLS
    assert all(shape(spans) == whole_call for spans in kept.values())


async def test_per_turn_traces_are_kept_or_dropped_as_whole_exchanges(
    instrument: Callable[..., Tracing], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = instrument(trace_per="turn")
    await run_calls(reference, 1)
    whole = [shape(spans) for spans in by_trace(reference.tree()).values()]
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    reader = InMemoryMetricReader()
    sampled = instrument(trace_per="turn", meter_provider=MeterProvider(metric_readers=[reader]))

    await run_calls(sampled, CALLS // 2)

    traces = by_trace(sampled.tree())
    assert 0 < len(traces) < (CALLS // 2) * len(whole)
    assert all(shape(spans) in whole for spans in traces.values())
    assert sampled.tree().orphans() == []
    assert counted(reader, "lk.turns") == (CALLS // 2) * len(TURNS)
