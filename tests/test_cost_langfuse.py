"""What Langfuse shows of a call's cost: every billed observation with model, usage and cost.

Each test exports a scripted call through ``setup_langfuse`` to a local OTLP receiver at
Langfuse's path and reads it with Langfuse's ingestion rules (``support.langfuse_mapper``):
a pipeline call with OpenAI's model names (``gpt-4o-mini``, ``whisper-1``, ``tts-1``), and
a realtime call with ``gpt-realtime`` (its input transcribed by ``gpt-4o-transcribe``),
none of which but ``gpt-4o-mini`` Langfuse's own price list knows.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from livekit_otel_dev.realtime import (
    RealtimeReply,
    RealtimeTurn,
    ScriptedRealtimeModel,
    run_realtime_session,
)
from livekit_otel_dev.scripted import ScriptedTTS, ToolCall, UserTurn, run_scripted_session
from livekit_otel_dev.scripted.models import ScriptedSTT

from livekit_otel import LiveKitAgentsInstrumentor, setup_langfuse
from livekit_otel.setup import installed as setup_state
from support.langfuse_mapper import LANGFUSE_OTEL_PATH, LangfuseObservation, LangfuseView, map_spans

PUBLIC_KEY = "pk-lf-cost-test"
SECRET_KEY = "sk-lf-cost-test"
AUTHORIZATION = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
OPENAI = "api.openai.com"
BILLED = ("llm_node", "realtime_response", "user_turn", "tts_node")

PIPELINE = (
    UserTurn("Hi, I'd like to plan a day out in Paris.", speech_duration=1.1),
    UserTurn(
        "What's the weather like in Paris today?",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        speech_duration=0.7,
    ),
)
REALTIME = [
    RealtimeTurn(
        "what is the weather in Paris",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        follow_up="It is sunny in Paris.",
    ),
    RealtimeTurn("tell me a story", reply=RealtimeReply("Once upon a time " * 4)),
]

Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[LangfuseView]]


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def langfuse(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    """``await langfuse(run)``: ``run()`` traced by ``setup_langfuse``, as Langfuse shows it."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    otlp_receiver.require_header("authorization", AUTHORIZATION)
    _uninstrument()
    provider = setup_langfuse(host=otlp_receiver.url, public_key=PUBLIC_KEY, secret_key=SECRET_KEY)

    async def call(run: Callable[[], Awaitable[Any]]) -> LangfuseView:
        await run()
        assert provider.force_flush(10_000)
        spans = otlp_receiver.spans
        assert {span.path for span in spans} == {LANGFUSE_OTEL_PATH}
        view = map_spans(spans)
        assert view.dropped == []
        return view

    try:
        yield call
    finally:
        _uninstrument()
        provider.shutdown()


def billed(view: LangfuseView) -> list[LangfuseObservation]:
    """The observations of billed models that reported usage (a reply cut off mid-stream
    reports none, and so has no cost)."""
    return [
        obs
        for name in BILLED
        for obs in view.named(name)
        if "lk.cost.total" in obs.attributes or obs.usage
    ]


def assert_priced(obs: LangfuseObservation, model: str) -> None:
    assert obs.type == "generation", obs.span_name
    assert obs.model == model, obs.span_name
    assert obs.usage and obs.usage["total"] > 0, obs.span_name
    assert obs.cost["total"] == obs.attributes["lk.cost.total"] > 0, obs.span_name
    assert set(obs.cost) == {"total"}, obs.span_name


async def test_every_billed_observation_of_a_pipeline_call_has_model_usage_and_cost(
    langfuse: Call,
) -> None:
    async def run() -> None:
        await run_scripted_session(
            PIPELINE,
            llm_options={"model": "gpt-4o-mini", "provider": OPENAI},
            stt=ScriptedSTT(model="whisper-1", provider=OPENAI),
            tts=ScriptedTTS(model="tts-1", provider=OPENAI),
        )

    view = await langfuse(run)

    models = {"llm_node": "gpt-4o-mini", "user_turn": "whisper-1", "tts_node": "tts-1"}
    observations = billed(view)
    assert {obs.span_name for obs in observations} == set(models)
    for obs in observations:
        assert_priced(obs, models[obs.span_name])
    (root,) = view.named("agent_session")
    assert root.attributes["lk.call.cost.total"] == pytest.approx(
        sum(obs.cost["total"] for obs in observations), abs=1e-9
    )
    (trace,) = view.traces.values()
    assert trace.metadata["call"]["turns"] == len(PIPELINE)


async def test_every_billed_observation_of_a_gpt_realtime_call_has_model_usage_and_cost(
    langfuse: Call,
) -> None:
    async def run() -> None:
        model = ScriptedRealtimeModel(model="gpt-realtime", provider=OPENAI)
        await run_realtime_session(REALTIME, greeting="Hello!", model=model)

    view = await langfuse(run)

    observations = billed(view)
    responses = [obs for obs in observations if obs.span_name == "realtime_response"]
    assert len(responses) >= len(REALTIME) + 1  # the greeting, a follow-up after the tool
    for obs in responses:
        assert_priced(obs, "gpt-realtime")
    transcriptions = [obs for obs in observations if obs.span_name == "user_turn"]
    for obs in transcriptions:  # where the release reports the transcription's usage
        assert_priced(obs, "gpt-4o-transcribe")
    (root,) = view.named("agent_session")
    assert root.attributes["lk.call.cost.realtime"] == pytest.approx(
        sum(obs.cost["total"] for obs in responses), abs=1e-9
    )
