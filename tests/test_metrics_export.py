"""OTLP metric export from ``setup_otlp``: a scripted call's metrics reach a real receiver.

The real instrumentor records to the meter provider ``setup_otlp`` built; the local OTLP
receiver decodes the ``ExportMetricsServiceRequest`` bodies the SDK posts to ``/v1/metrics``.
Every expected value comes from the spans of the same call (an in-memory exporter added to
the tracer provider ``setup_otlp`` returned): counts and sums exactly, each histogram's
buckets by placing the spans' own values in the same bounds. The periodic interval is set
to a minute, so only the flush at the end sends the metrics.

``setup_prometheus`` is checked the same way against its ``/metrics`` text, without a
Prometheus server (tests/test_prometheus_session.py runs a real one).
"""

from __future__ import annotations

import asyncio
import bisect
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, ReceivedMetric, ReceivedPoint
from livekit_otel_dev.scripted import ScriptedRun, ToolCall, UserTurn, run_scripted_session
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import (
    LiveKitAgentsInstrumentor,
    installed_meter_provider,
    set_tracer_provider,
    setup_otlp,
    setup_prometheus,
)
from livekit_otel.mapping.instruments import OPERATION_DURATION_BUCKETS, VOICE_LATENCY_BUCKETS
from livekit_otel.recording import registry as lifecycle
from livekit_otel.setup import installed as setup_state
from support.tracing import SpanTree, attributes

TURNS = [
    UserTurn("hello there"),
    UserTurn(
        "what is the weather in Paris", reply=ToolCall("lookup_weather", {"location": "Paris"})
    ),
    UserTurn(
        "tell me a story", reply="Once upon a time there was a fox. " * 12, interrupt_after=0.02
    ),
    UserTurn("thanks, bye"),
]
AGENT = "scripted_agent"
PARTS = ("end_of_turn", "on_user_turn_completed", "llm", "tools", "tts", "playout")
ROUNDING_S = 1e-6
"""Per value: spans carry latencies rounded to the microsecond, metrics the exact ones."""
DURATION_SLACK_S = 0.005
"""Per LLM call: the metric's duration is read just before the ``llm_node`` span ends."""


def uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@dataclass
class ExportedCall:
    """A scripted call exported through ``setup_otlp``: its run, spans and metrics."""

    run: ScriptedRun
    tree: SpanTree
    receiver: OtlpReceiver

    def metric(self, name: str) -> ReceivedMetric:
        return self.receiver.latest(name)

    def agent_turns(self) -> list[dict[str, Any]]:
        return [attributes(span) for span in self.tree.named("agent_turn")]

    def heard_turns(self) -> list[dict[str, Any]]:
        return [a for a in self.agent_turns() if "lk.turn.perceived_latency" in a]


@pytest.fixture(scope="module")
def exported() -> Iterator[ExportedCall]:
    receiver = OtlpReceiver().start()
    uninstrument()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")
        monkeypatch.setattr(setup_state, "_installed", None)
        monkeypatch.setattr(setup_state, "_served", None)
        monkeypatch.setattr(lifecycle, "_every_job", {})
        provider = setup_otlp(
            receiver.url,
            headers={"x-api-key": "k"},
            service_name="metrics-export",
            instrument_options={"environment": "test"},
        )
        meter_provider = installed_meter_provider()
        assert meter_provider is not None
        spans = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        try:
            run = asyncio.run(run_scripted_session(TURNS, mode="audio"))
            assert receiver.metrics == []  # nothing before the flush
            assert meter_provider.force_flush(10_000)
            receiver.wait_for_metrics("lk.turns", "lk.turn.perceived_latency")
            yield ExportedCall(run, SpanTree(spans.get_finished_spans()), receiver)
        finally:
            uninstrument()
            provider.shutdown()
            meter_provider.shutdown()
            receiver.stop()


def buckets_of(values: list[float], bounds: tuple[float, ...]) -> list[int]:
    """How many of ``values`` fall in each bucket, as OpenTelemetry counts them: bucket i
    holds (bounds[i-1], bounds[i]], the last one everything above the last bound."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1
    return counts


def one_point(metric: ReceivedMetric, **wanted: Any) -> ReceivedPoint:
    found = [
        point
        for point in metric.points
        if all(point.attributes.get(key) == value for key, value in wanted.items())
    ]
    assert len(found) == 1, (wanted, metric.points)
    return found[0]


def test_the_metrics_arrive_at_v1_metrics_with_the_setup_headers_and_resource(
    exported: ExportedCall,
) -> None:
    metric = exported.metric("lk.turns")

    assert metric.path == "/v1/metrics"
    assert metric.headers["x-api-key"] == "k"
    assert metric.resource["service.name"] == "metrics-export"
    assert metric.scope_name == "livekit_otel"


def test_every_instrument_arrives_with_its_unit_and_kind(exported: ExportedCall) -> None:
    expected = {
        "lk.turn.perceived_latency": ("s", "histogram"),
        "lk.turn.latency": ("s", "histogram"),
        "gen_ai.client.operation.duration": ("s", "histogram"),
        "gen_ai.client.operation.time_to_first_chunk": ("s", "histogram"),
        "gen_ai.client.token.usage": ("{token}", "histogram"),
        "lk.turns": ("{turn}", "sum"),
        "lk.usage.tts_characters": ("{character}", "sum"),
        "lk.usage.stt_audio_duration": ("s", "sum"),
    }

    got = {name: (exported.metric(name).unit, exported.metric(name).kind) for name in expected}

    assert got == expected
    for name in expected:
        assert exported.metric(name).temporality == "CUMULATIVE"
        assert exported.metric(name).description


def test_turns_by_interruption_equal_the_agent_turn_spans(exported: ExportedCall) -> None:
    metric = exported.metric("lk.turns")
    spans = exported.agent_turns()

    for interrupted in (False, True):
        point = one_point(metric, **{"lk.turn.interrupted": interrupted})
        assert point.value == sum(1 for a in spans if a["lk.turn.interrupted"] is interrupted)
        assert point.attributes == {
            "lk.turn.interrupted": interrupted,
            "lk.agent.name": AGENT,
            "deployment.environment.name": "test",
        }
    assert metric.monotonic is True


def test_perceived_latency_buckets_count_and_sum_equal_the_spans(exported: ExportedCall) -> None:
    values = [a["lk.turn.perceived_latency"] for a in exported.heard_turns()]
    (point,) = exported.metric("lk.turn.perceived_latency").points

    assert point.count == len(values) >= 3
    assert point.sum == pytest.approx(sum(values), abs=ROUNDING_S * len(values))
    assert point.explicit_bounds == VOICE_LATENCY_BUCKETS
    assert list(point.bucket_counts) == buckets_of(values, VOICE_LATENCY_BUCKETS)


def test_each_latency_part_equals_the_spans(exported: ExportedCall) -> None:
    metric = exported.metric("lk.turn.latency")
    turns = exported.heard_turns()

    for part in PARTS:
        values = [a[f"lk.turn.latency.{part}"] for a in turns]
        point = one_point(metric, **{"lk.latency.part": part})
        assert point.count == len(values)
        assert point.sum == pytest.approx(sum(values), abs=ROUNDING_S * len(values))
        assert list(point.bucket_counts) == buckets_of(values, VOICE_LATENCY_BUCKETS)


def test_operation_duration_counts_every_llm_node_and_sums_their_durations(
    exported: ExportedCall,
) -> None:
    nodes: list[ReadableSpan] = exported.tree.named("llm_node")
    durations = [((s.end_time or 0) - (s.start_time or 0)) / 1e9 for s in nodes]
    (point,) = exported.metric("gen_ai.client.operation.duration").points

    assert point.count == len(nodes) >= len(TURNS) + 1  # the tool turn has two
    assert point.sum == pytest.approx(sum(durations), abs=DURATION_SLACK_S * len(nodes))
    assert point.explicit_bounds == OPERATION_DURATION_BUCKETS
    assert point.attributes["gen_ai.operation.name"] == "chat"
    assert point.attributes["gen_ai.request.model"] == attributes(nodes[0])["gen_ai.request.model"]


def test_token_usage_by_type_equals_the_llm_node_spans(exported: ExportedCall) -> None:
    metric = exported.metric("gen_ai.client.token.usage")
    nodes = [attributes(s) for s in exported.tree.named("llm_node")]

    for kind, key in (
        ("input", "gen_ai.usage.input_tokens"),
        ("output", "gen_ai.usage.output_tokens"),
    ):
        reported = [a[key] for a in nodes if key in a]
        point = one_point(metric, **{"gen_ai.token.type": kind})
        assert (point.count, point.sum) == (len(reported), sum(reported))
        assert point.sum > 0


def test_usage_counters_equal_the_session_totals(exported: ExportedCall) -> None:
    session = attributes(exported.tree.one("agent_session"))
    (characters,) = exported.metric("lk.usage.tts_characters").points
    (seconds,) = exported.metric("lk.usage.stt_audio_duration").points

    assert characters.value == session["lk.usage.tts_characters_count"] > 0
    assert seconds.value == pytest.approx(session["lk.usage.stt_audio_duration"])
    assert set(characters.attributes) <= {"lk.model", "lk.provider", "deployment.environment.name"}


# -- Prometheus endpoint, read without a Prometheus server -----------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    total = 0.0
    found = False
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:{{(.*)}})? (\S+)", line)
        if match is None:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(have.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
            found = True
    assert found, f"no sample {name}{labels}"
    return total


def test_setup_prometheus_serves_a_scripted_calls_metrics_as_the_spans_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")
    uninstrument()
    monkeypatch.setattr(setup_state, "_installed", None)
    monkeypatch.setattr(setup_state, "_served", None)
    spans = InMemorySpanExporter()
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(spans))
    try:
        setup_prometheus(port=0)  # instruments livekit-agents, spans to the global provider
        set_tracer_provider(traces)  # keeps the Prometheus meter provider
        assert setup_state._served is not None
        port = setup_state._served.port
        asyncio.run(run_scripted_session(TURNS, mode="audio"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        uninstrument()
        if setup_state._served is not None:
            setup_state._served.close()
        traces.shutdown()
    tree = SpanTree(spans.get_finished_spans())
    turns = [attributes(s) for s in tree.named("agent_turn")]
    heard = [a["lk.turn.perceived_latency"] for a in turns if "lk.turn.perceived_latency" in a]

    assert sample(text, "lk_turns_total", lk_turn_interrupted="true") == 1
    assert sample(text, "lk_turns_total") == len(turns)
    assert sample(text, "lk_turn_perceived_latency_seconds_count") == len(heard)
    assert sample(text, "lk_turn_perceived_latency_seconds_sum") == pytest.approx(
        sum(heard), abs=ROUNDING_S * len(heard)
    )
    assert sample(text, "lk_turn_perceived_latency_seconds_bucket", le="+Inf") == len(heard)
    assert sample(text, "lk_turn_latency_seconds_count", lk_latency_part="llm") == len(heard)
    assert sample(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") > 0
    assert sample(text, "lk_usage_tts_characters_total") > 0
