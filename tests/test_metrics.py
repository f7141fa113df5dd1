"""OpenTelemetry metrics: the contract's instruments, recorded from the same facts as the spans.

A scripted audio call runs with an in-memory metric reader on the meter provider given to
``instrument()``. Expected counts and sums come from the script and from LiveKit's own
metrics objects of the same call, never from the spans' code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics
from livekit_otel_dev.scripted import (
    ScriptedConversation,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from livekit_otel.mapping.instruments import VOICE_LATENCY_BUCKETS
from support.tracing import SpanTree, attributes, instrumented

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
STORY = "Once upon a time there was a fox. " * 12
TURNS = [
    UserTurn("hello there"),
    UserTurn("what is the weather in Paris", reply=WEATHER),
    UserTurn("tell me a story", reply=STORY, interrupt_after=0.02),
]
AGENT = "scripted_agent"  # the scripted agent's label
PARTS = ("end_of_turn", "on_user_turn_completed", "llm", "tools", "tts", "playout")
HIGH_CARDINALITY = ("session.id", "user.id", "langfuse.session.id", "lk.speech_id")


@dataclass
class Points:
    """Every data point of one instrument, with its attributes."""

    points: list[Any]

    def matching(self, **wanted: Any) -> list[Any]:
        return [
            p
            for p in self.points
            if all(dict(p.attributes).get(k.replace("_", ".")) == v for k, v in wanted.items())
        ]


@dataclass
class MeteredCall:
    run: Any
    tree: SpanTree
    metrics: dict[str, Points]

    def points(self, name: str) -> list[Any]:
        return self.metrics[name].points


def collect(reader: InMemoryMetricReader) -> dict[str, Points]:
    found: dict[str, Points] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, Points([])).points.extend(metric.data.data_points)
    return found


@pytest.fixture(scope="module")
def call() -> Iterator[MeteredCall]:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with instrumented(meter_provider=meter_provider, environment="test") as tracing:
        run = asyncio.run(run_scripted_session(TURNS, mode="audio"))
        yield MeteredCall(run, tracing.tree(), collect(reader))
    meter_provider.shutdown()


def test_turns_are_counted_by_interruption(call: MeteredCall) -> None:
    counts = {dict(p.attributes)["lk.turn.interrupted"]: p.value for p in call.points("lk.turns")}
    assert counts == {False: 2, True: 1}


def test_each_heard_turn_records_one_perceived_latency(call: MeteredCall) -> None:
    (point,) = call.points("lk.turn.perceived_latency")
    assert point.count == len(TURNS)


def test_perceived_latency_histogram_sums_what_the_spans_carry(call: MeteredCall) -> None:
    (point,) = call.points("lk.turn.perceived_latency")
    spans = [attributes(s)["lk.turn.perceived_latency"] for s in call.tree.named("agent_turn")]
    assert point.sum == pytest.approx(sum(spans), abs=1e-5)


def test_each_latency_part_is_recorded_once_per_heard_turn(call: MeteredCall) -> None:
    by_part = {
        dict(p.attributes)["lk.latency.part"]: p.count for p in call.points("lk.turn.latency")
    }
    assert by_part == dict.fromkeys(PARTS, len(TURNS))


def test_latency_histograms_use_voice_latency_buckets(call: MeteredCall) -> None:
    (point,) = call.points("lk.turn.perceived_latency")
    assert tuple(point.explicit_bounds) == VOICE_LATENCY_BUCKETS


def test_every_llm_inference_records_its_duration(call: MeteredCall) -> None:
    (point,) = call.points("gen_ai.client.operation.duration")
    assert point.count == len(call.run.metrics_of(LLMMetrics))
    assert dict(point.attributes)["gen_ai.operation.name"] == "chat"


def test_token_usage_sums_livekits_llm_metrics(call: MeteredCall) -> None:
    llm = call.run.metrics_of(LLMMetrics)
    by_type = {
        dict(p.attributes)["gen_ai.token.type"]: p.sum
        for p in call.points("gen_ai.client.token.usage")
    }
    assert by_type == {
        "input": sum(m.prompt_tokens for m in llm),
        "output": sum(m.completion_tokens for m in llm),
    }


def test_tts_characters_sum_livekits_tts_metrics(call: MeteredCall) -> None:
    (point,) = call.points("lk.usage.tts_characters")
    assert point.value == sum(m.characters_count for m in call.run.metrics_of(TTSMetrics))


def test_stt_audio_seconds_sum_livekits_stt_metrics(call: MeteredCall) -> None:
    (point,) = call.points("lk.usage.stt_audio_duration")
    expected = sum(m.audio_duration for m in call.run.metrics_of(STTMetrics))
    assert point.value == pytest.approx(expected)


def test_turn_metrics_carry_the_agent_name_and_environment(call: MeteredCall) -> None:
    for point in call.points("lk.turn.perceived_latency"):
        assert dict(point.attributes) == {
            "lk.agent.name": AGENT,
            "deployment.environment.name": "test",
        }


def test_no_metric_carries_a_session_user_or_speech_id(call: MeteredCall) -> None:
    keys = {key for points in call.metrics.values() for p in points.points for key in p.attributes}
    assert keys.isdisjoint(HIGH_CARDINALITY)


def test_metrics_are_recorded_as_each_turn_ends_not_at_session_close() -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])

    async def first_turn_then_read() -> int:
        conversation = ScriptedConversation()
        await conversation.start()
        await conversation.user_says(TURNS[0])
        for _ in range(100):  # the reply's done callbacks run right after it finished playing
            if "lk.turns" in collect(reader):
                break
            await asyncio.sleep(0.01)
        (turns,) = collect(reader)["lk.turns"].points
        await conversation.aclose()
        return int(turns.value)

    with instrumented(meter_provider=meter_provider):
        assert asyncio.run(first_turn_then_read()) == 1
    meter_provider.shutdown()
