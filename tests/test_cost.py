"""What a call cost: every billed span priced, the call's totals on its root, the metrics.

A scripted audio call (a real ``AgentSession``) runs with the model names of OpenAI's
plugins: LLM ``gpt-4o-mini``, STT ``whisper-1``, TTS ``tts-1``; a scripted realtime call
with ``gpt-realtime`` (its input transcribed by ``gpt-4o-transcribe``). The expected costs come
from the usage the script reported (its STT audio seconds per turn, and LiveKit's own
metrics objects of the same call) times the published prices written below, never from
the code under test.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics
from livekit_otel_dev.realtime import (
    RealtimeReply,
    RealtimeRun,
    RealtimeTurn,
    ScriptedRealtimeModel,
    run_realtime_session,
)
from livekit_otel_dev.scripted import (
    ScriptedRun,
    ScriptedTTS,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from livekit_otel_dev.scripted.models import ScriptedSTT
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel.mapping.prices import TABLE_DATE
from support.shapes import speech_start_dated_by_vad, synthesized, tts_nodes_per_reply
from support.tracing import SpanTree, attributes, instrumented

# published prices (USD), as the table cites them
GPT_4O_MINI = {"input": 0.15 / 1e6, "cached": 0.075 / 1e6, "output": 0.60 / 1e6}
WHISPER_1_PER_SECOND = 0.006 / 60
TTS_1_PER_CHARACTER = 15.0 / 1e6

SCRIPT = (
    UserTurn("Hi, I'd like to plan a day out in Paris.", speech_duration=1.2),
    UserTurn(
        "What's the weather like in Paris today?",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        speech_duration=0.9,
    ),
    UserTurn(
        "Tell me everything about the Louvre.",
        reply="The Louvre began as a fortress built in the late twelfth century. " * 6,
        interrupt_after=0.05,
        speech_duration=1.4,
    ),
    UserTurn("Thanks, bye!", speech_duration=0.5),
)
USD = 1e-12  # rounding of the written values (10 decimals)


@dataclass
class PricedCall:
    run: ScriptedRun
    tree: SpanTree
    metrics: dict[str, list[Any]]

    @property
    def root(self) -> dict[str, Any]:
        return attributes(self.tree.one("agent_session"))

    def costs(self, name: str) -> list[float]:
        return [attributes(s)["lk.cost.total"] for s in self.billed(name)]

    def billed(self, name: str) -> list[ReadableSpan]:
        """The spans of this name that used a model (a ``tts_node`` that synthesized)."""
        spans = self.tree.named(name)
        return [s for s in spans if name != "tts_node" or synthesized(attributes(s))]


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _priced_call(**options: Any) -> tuple[ScriptedRun, SpanTree, dict[str, list[Any]]]:
    reader = InMemoryMetricReader()
    with instrumented(meter_provider=MeterProvider(metric_readers=[reader]), **options) as tracing:
        run = asyncio.run(
            run_scripted_session(
                SCRIPT,
                llm_options={"model": "gpt-4o-mini", "provider": "api.openai.com"},
                stt=ScriptedSTT(model="whisper-1", provider="api.openai.com"),
                tts=ScriptedTTS(model="tts-1", provider="api.openai.com"),
                session_options={"min_interruption_duration": 0.01},
            )
        )
        return run, tracing.tree(), _points(reader)


@pytest.fixture(scope="module")
def call() -> Iterator[PricedCall]:
    yield PricedCall(*_priced_call())


def _llm_cost(metrics: LLMMetrics) -> float:
    cached = metrics.prompt_cached_tokens
    return (
        (metrics.prompt_tokens - cached) * GPT_4O_MINI["input"]
        + cached * GPT_4O_MINI["cached"]
        + metrics.completion_tokens * GPT_4O_MINI["output"]
    )


def _reported(run: ScriptedRun) -> list[LLMMetrics]:
    # a reply cut off mid-stream reports no usage (0 and 0): it has no cost
    return [m for m in run.metrics_of(LLMMetrics) if m.prompt_tokens or m.completion_tokens]


# -- each billed span ---------------------------------------------------------------------------
def test_each_llm_node_costs_its_tokens_at_the_published_price(call: PricedCall) -> None:
    by_request = {m.request_id: m for m in _reported(call.run)}
    priced = [s for s in call.tree.named("llm_node") if "lk.cost.total" in attributes(s)]
    assert len(priced) == len(by_request) > 0
    for span in priced:
        values = attributes(span)
        expected = _llm_cost(by_request[values["lk.llm.request_id"]])
        assert values["lk.cost.total"] == pytest.approx(expected, abs=USD)
        assert values["lk.cost.source"] == TABLE_DATE


def test_each_user_turn_costs_its_audio_seconds_at_whisper_1_price(call: PricedCall) -> None:
    turns = call.tree.named("user_turn")
    assert len(turns) == len(SCRIPT)
    for span, said in zip(turns, SCRIPT, strict=True):
        values = attributes(span)
        assert values["lk.stt.model"] == "whisper-1"
        expected = said.speech_duration * WHISPER_1_PER_SECOND
        assert values["lk.cost.total"] == pytest.approx(expected, abs=USD)


def test_each_tts_node_costs_its_characters_at_tts_1_price(call: PricedCall) -> None:
    nodes = call.billed("tts_node")
    by_node = [attributes(s) for s in nodes]
    assert by_node
    assert all("lk.tts.characters_count" in values for values in by_node)
    silent = [attributes(s) for s in call.tree.named("tts_node") if s not in nodes]
    assert not [values for values in silent if "lk.cost.total" in values]  # never a cost of 0
    for values in by_node:
        expected = values["lk.tts.characters_count"] * TTS_1_PER_CHARACTER
        assert values["lk.cost.total"] == pytest.approx(expected, abs=USD)
    emitted = sum(m.characters_count for m in call.run.metrics_of(TTSMetrics))
    assert sum(call.costs("tts_node")) == pytest.approx(emitted * TTS_1_PER_CHARACTER, abs=USD)


# -- the call's totals ----------------------------------------------------------------------------
def test_the_call_cost_by_kind_is_the_usage_of_the_call_at_published_prices(
    call: PricedCall,
) -> None:
    root = call.root
    expected = {
        "llm": math.fsum(_llm_cost(m) for m in _reported(call.run)),
        "stt": math.fsum(turn.speech_duration for turn in SCRIPT) * WHISPER_1_PER_SECOND,
        "tts": math.fsum(m.characters_count for m in call.run.metrics_of(TTSMetrics))
        * TTS_1_PER_CHARACTER,
    }
    for kind, usd in expected.items():
        assert root[f"lk.call.cost.{kind}"] == pytest.approx(usd, abs=1e-9)
    assert "lk.call.cost.realtime" not in root


def test_the_call_total_is_the_sum_of_its_parts_and_of_its_spans(call: PricedCall) -> None:
    root = call.root
    parts = [root[f"lk.call.cost.{kind}"] for kind in ("llm", "stt", "tts")]
    assert root["lk.call.cost.total"] == pytest.approx(sum(parts), abs=1e-9)
    spans = [attributes(s).get("lk.cost.total", 0.0) for s in call.tree]
    assert root["lk.call.cost.total"] == pytest.approx(sum(spans), abs=1e-9)


def test_the_call_at_a_glance_counts_its_replies_and_the_interrupted_one(
    call: PricedCall,
) -> None:
    root = call.root
    replies = [
        s for s in call.tree.named("agent_turn") if not attributes(s).get("lk.turn.discarded")
    ]
    assert root["lk.call.turns"] == len(replies) == len(SCRIPT)
    interrupted = [s for s in replies if attributes(s)["lk.turn.interrupted"]]
    assert root["lk.call.interrupted_turns"] == len(interrupted) == 1
    assert root["lk.call.end_reason"] == root["lk.session.close_reason"]


def test_the_call_at_a_glance_takes_its_latencies_from_the_agent_turns(call: PricedCall) -> None:
    heard = [
        attributes(s)["lk.turn.perceived_latency"]
        for s in call.tree.named("agent_turn")
        if "lk.turn.perceived_latency" in attributes(s)
    ]
    assert heard
    root = call.root
    # the turns' values are written to the microsecond, as the call's are
    assert root["lk.call.perceived_latency.median"] == pytest.approx(
        statistics.median(heard), abs=1e-6
    )
    assert root["lk.call.perceived_latency.max"] == pytest.approx(max(heard), abs=1e-6)


def test_the_call_at_a_glance_adds_up_the_played_audio_and_lasts_no_longer_than_the_run(
    call: PricedCall,
) -> None:
    root = call.root
    played = [
        attributes(s)["lk.turn.played_duration"]
        for s in call.tree.named("agent_turn")
        if "lk.turn.played_duration" in attributes(s)
    ]
    assert root["lk.call.agent_talk_time"] == pytest.approx(sum(played), abs=1e-5)
    assert 0 < root["lk.call.duration"] <= call.run.elapsed
    assert root["lk.call.longest_silence"] >= 0


def test_the_call_at_a_glance_counts_the_user_speech_as_livekit_dates_it(
    call: PricedCall,
) -> None:
    talk = call.root["lk.call.user_talk_time"]
    if speech_start_dated_by_vad():
        # each utterance from its scripted speech's start to the end of speech, which the
        # END_OF_SPEECH event dates its scripted silence before it arrived (both simulated),
        # plus the real time between the two VAD events
        scripted = math.fsum(t.speech_duration - t.silence_duration for t in SCRIPT)
        assert scripted - 1e-6 <= talk < scripted + call.run.elapsed
    else:
        # the start is dated when START_OF_SPEECH arrives: only the real time between the
        # two events, less the simulated silence, is speech (none unless the machine stalls)
        assert 0 <= talk < call.run.elapsed


def langfuse_call(root: dict[str, Any]) -> dict[str, Any]:
    """The call at a glance as Langfuse trace metadata: ``{"call": {...}}`` (one JSON object,
    or one ``call_<name>`` key each when the size limit is smaller), and its transcript."""
    found = root.get("langfuse.trace.metadata")
    call: dict[str, Any] = json.loads(found)["call"] if isinstance(found, str) else {}
    prefix = "langfuse.trace.metadata.call_"
    call.update(
        {key[len(prefix) :]: value for key, value in root.items() if key.startswith(prefix)}
    )
    return call


def transcript_of(root: dict[str, Any]) -> str | None:
    """The call's transcript: Langfuse trace metadata, or (no convention) ``lk.call.transcript``."""
    found = [
        text
        for text in (langfuse_call(root).get("transcript"), root.get("lk.call.transcript"))
        if text
    ]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_transcript_of_the_call_has_every_line_in_order(call: PricedCall) -> None:
    transcript = transcript_of(call.root)
    assert transcript is not None
    assert call.root["lk.call.transcript.cut"] is False
    positions = [transcript.index(f"user: {turn.text}") for turn in SCRIPT]
    assert positions == sorted(positions)
    assert "agent: " in transcript


def test_langfuse_gets_the_call_at_a_glance_as_trace_metadata_but_its_costs(
    call: PricedCall,
) -> None:
    root = call.root
    glance = {
        key.removeprefix("lk.call.").replace(".", "_"): value
        for key, value in root.items()
        if key.startswith("lk.call.") and not key.startswith(("lk.call.cost.", "lk.call.trans"))
    }
    assert len(glance) >= 9
    shown = langfuse_call(root)
    # Langfuse sums the trace's cost from the observations' cost_details itself
    assert {key: shown[key] for key in glance} == glance
    assert not [key for key in shown if key.startswith("cost")]


def test_with_no_convention_the_transcript_is_an_lk_attribute() -> None:
    with instrumented(conventions="none") as tracing:
        asyncio.run(run_scripted_session(SCRIPT[:1]))
        root = attributes(tracing.tree().one("agent_session"))
    assert root["lk.call.transcript"].startswith(f"user: {SCRIPT[0].text}\nagent: ")
    assert not [key for key in root if key.startswith("langfuse.trace.metadata")]


# -- Langfuse -------------------------------------------------------------------------------
def test_stt_and_tts_are_langfuse_generations_without_chat_keys(call: PricedCall) -> None:
    for name, model in (("user_turn", "whisper-1"), ("tts_node", "tts-1")):
        for span in call.tree.named(name):
            values = attributes(span)
            if "lk.cost.total" not in values:
                continue
            assert values["langfuse.observation.type"] == "generation"
            assert values["langfuse.observation.model.name"] == model
            assert not [key for key in values if key.startswith("gen_ai.")]
            cost = json.loads(values["langfuse.observation.cost_details"])
            assert cost == {"total": values["lk.cost.total"]}


def test_stt_usage_goes_to_langfuse_as_whole_milliseconds(call: PricedCall) -> None:
    for span, said in zip(call.tree.named("user_turn"), SCRIPT, strict=True):
        usage = json.loads(attributes(span)["langfuse.observation.usage_details"])
        assert usage == {"input_audio_ms": round(said.speech_duration * 1000)}


# -- metrics --------------------------------------------------------------------------------
def _sum_by(points: list[Any], key: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for point in points:
        name = str(point.attributes[key])
        sums[name] = sums.get(name, 0.0) + point.value
    return sums


def test_the_cost_counter_adds_up_to_the_spans_by_kind(call: PricedCall) -> None:
    by_kind = _sum_by(call.metrics["lk.cost"], "lk.kind")
    root = call.root
    assert set(by_kind) == {"llm", "stt", "tts"}
    for kind, usd in by_kind.items():
        assert usd == pytest.approx(root[f"lk.call.cost.{kind}"], abs=1e-9)
    models = {str(p.attributes["lk.model"]) for p in call.metrics["lk.cost"]}
    assert models == {"gpt-4o-mini", "whisper-1", "tts-1"}
    assert {str(p.attributes["lk.provider"]) for p in call.metrics["lk.cost"]} == {"openai"}


def test_each_call_records_its_duration_turns_and_cost_once(call: PricedCall) -> None:
    root = call.root
    for name, value in (
        ("lk.call.duration", root["lk.call.duration"]),
        ("lk.call.turns", root["lk.call.turns"]),
        ("lk.call.cost", root["lk.call.cost.total"]),
    ):
        (point,) = call.metrics[name]
        assert point.count == 1
        assert point.sum == pytest.approx(value, abs=1e-6)


# -- no price, user prices ----------------------------------------------------------------------
def _unpriced_spans(tree: SpanTree) -> list[ReadableSpan]:
    return [
        s for s in tree if any(k.startswith(("lk.cost", "lk.call.cost")) for k in attributes(s))
    ]


def test_a_model_without_a_price_has_usage_and_no_cost() -> None:
    with instrumented() as tracing:  # the scripted models' names are in no price list
        asyncio.run(run_scripted_session(SCRIPT[:2]))
        tree = tracing.tree()
    assert _unpriced_spans(tree) == []
    spoken = [s for s in tree.named("tts_node") if synthesized(attributes(s))]
    assert len(spoken) == tts_nodes_per_reply(0) * 2
    for span in tree.named("user_turn") + spoken:
        values = attributes(span)
        assert values["langfuse.observation.type"] == "generation"
        assert json.loads(values["langfuse.observation.usage_details"])
        assert "langfuse.observation.cost_details" not in values
    for span in tree.named("llm_node"):
        assert attributes(span)["gen_ai.usage.input_tokens"] > 0


def test_user_prices_price_a_model_the_table_lacks_and_say_so() -> None:
    prices = {"scripted-stt-1": {"kind": "stt", "unit": "hour", "input_audio_seconds": 0.36}}
    with instrumented(prices=prices) as tracing:
        asyncio.run(run_scripted_session(SCRIPT[:2]))
        tree = tracing.tree()
    for span, said in zip(tree.named("user_turn"), SCRIPT[:2], strict=True):
        values = attributes(span)
        assert values["lk.cost.total"] == pytest.approx(said.speech_duration * 0.36 / 3600, abs=USD)
        assert values["lk.cost.source"] == "user"
    assert not [s for s in tree.named("llm_node") if "lk.cost.total" in attributes(s)]


def test_a_model_priced_none_gets_no_cost_from_livekit_otel() -> None:
    _, tree, _ = _priced_call(prices={"gpt-4o-mini": None})
    assert not [s for s in tree.named("llm_node") if "lk.cost.total" in attributes(s)]
    root = attributes(tree.one("agent_session"))
    assert "lk.call.cost.llm" not in root
    assert root["lk.call.cost.total"] == pytest.approx(
        root["lk.call.cost.stt"] + root["lk.call.cost.tts"], abs=1e-9
    )


def test_without_content_capture_the_call_has_no_transcript() -> None:
    with instrumented(capture_content=False) as tracing:
        asyncio.run(run_scripted_session(SCRIPT[:1]))
        root = attributes(tracing.tree().one("agent_session"))
    assert transcript_of(root) is None
    assert root["lk.call.turns"] == 1


def test_a_transcript_over_the_size_limit_keeps_its_end_and_says_it_was_cut() -> None:
    with instrumented(max_attribute_length=60) as tracing:
        asyncio.run(run_scripted_session(SCRIPT[:2]))
        root = attributes(tracing.tree().one("agent_session"))
    transcript = transcript_of(root)
    assert transcript is not None and len(transcript) <= 60
    assert root["lk.call.transcript.cut"] is True
    assert transcript.startswith("[... earlier turns cut]\n")
    assert SCRIPT[0].text not in transcript


# -- a realtime call ---------------------------------------------------------------------------
# gpt-realtime's published prices per token, by usage key
GPT_REALTIME = {
    "input_text_tokens": 4.0 / 1e6,
    "input_cached_text_tokens": 0.4 / 1e6,
    "input_audio_tokens": 32.0 / 1e6,
    "input_cached_audio_tokens": 0.4 / 1e6,
    "output_text_tokens": 16.0 / 1e6,
    "output_audio_tokens": 64.0 / 1e6,
}
# gpt-4o-transcribe (the realtime model's input transcription), per token
GPT_4O_TRANSCRIBE = {"input": 2.5 / 1e6, "output": 10.0 / 1e6}
REALTIME_SCRIPT = [
    RealtimeTurn(
        "what is the weather in Paris",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        follow_up="It is sunny and 21 degrees in Paris.",
    ),
    RealtimeTurn(
        "tell me a story", reply=RealtimeReply("Once upon a time " * 6, until_interrupted=True)
    ),
    RealtimeTurn("never mind"),
]


def _realtime_cost(metrics: Any) -> float:
    inputs, outputs = metrics.input_token_details, metrics.output_token_details
    cached = inputs.cached_tokens_details
    return (
        (inputs.text_tokens - cached.text_tokens) * GPT_REALTIME["input_text_tokens"]
        + cached.text_tokens * GPT_REALTIME["input_cached_text_tokens"]
        + (inputs.audio_tokens - cached.audio_tokens) * GPT_REALTIME["input_audio_tokens"]
        + cached.audio_tokens * GPT_REALTIME["input_cached_audio_tokens"]
        + outputs.text_tokens * GPT_REALTIME["output_text_tokens"]
        + outputs.audio_tokens * GPT_REALTIME["output_audio_tokens"]
    )


@pytest.fixture(scope="module")
def realtime_call() -> Iterator[tuple[RealtimeRun, SpanTree]]:
    with instrumented() as tracing:
        run = asyncio.run(
            run_realtime_session(
                REALTIME_SCRIPT,
                greeting="Hello! How can I help?",
                model=ScriptedRealtimeModel(model="gpt-realtime"),
            )
        )
        yield run, tracing.tree()


def test_each_realtime_response_costs_its_tokens_at_gpt_realtime_prices(
    realtime_call: tuple[RealtimeRun, SpanTree],
) -> None:
    run, tree = realtime_call
    by_id = {m.request_id: m for m in run.realtime_metrics if m.request_id}
    responses = tree.named("realtime_response")
    assert len(responses) == len(by_id) > 0
    for span in responses:
        values = attributes(span)
        expected = _realtime_cost(by_id[values["gen_ai.response.id"]])
        assert values["lk.cost.total"] == pytest.approx(expected, abs=USD)
    root = attributes(tree.one("agent_session"))
    total = math.fsum(_realtime_cost(m) for m in by_id.values())
    assert root["lk.call.cost.realtime"] == pytest.approx(total, abs=1e-9)


def test_the_realtime_transcription_is_priced_as_gpt_4o_transcribe_tokens(
    realtime_call: tuple[RealtimeRun, SpanTree],
) -> None:
    run, tree = realtime_call
    transcriptions = [m for m in run.metrics if isinstance(m, STTMetrics) and m.input_tokens]
    if not transcriptions:
        pytest.skip("this livekit-agents release reports no transcription tokens")
    expected = math.fsum(
        m.input_tokens * GPT_4O_TRANSCRIBE["input"] + m.output_tokens * GPT_4O_TRANSCRIBE["output"]
        for m in transcriptions
    )
    turns = [attributes(s) for s in tree.named("user_turn")]
    assert {values["lk.stt.model"] for values in turns} == {"gpt-4o-transcribe"}
    assert math.fsum(values["lk.cost.total"] for values in turns) == pytest.approx(
        expected, abs=1e-9
    )
    root = attributes(tree.one("agent_session"))
    assert root["lk.call.cost.stt"] == pytest.approx(expected, abs=1e-9)
    assert root["lk.call.cost.total"] == pytest.approx(
        root["lk.call.cost.stt"] + root["lk.call.cost.realtime"], abs=1e-9
    )
