"""A realtime call as Langfuse reads it: prompt, tools, heard output, completion start, traces.

``setup_langfuse`` exports a scripted realtime call (a greeting, a question answered through
a tool and a spoken follow-up whose transcript comes late, a story the user cuts off) to a
local receiver, and Langfuse's OTLP ingestion rules (``support.langfuse_mapper``) read it
back. Expected values come from the script: the agent's instructions and tools, the kit's
stamps (first function call, truncation point) and LiveKit's own metrics.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from livekit_otel_dev.realtime import (
    FRAME_SECONDS,
    RealtimeReply,
    RealtimeRun,
    RealtimeTurn,
    ScriptedRealtimeModel,
    run_realtime_session,
)
from livekit_otel_dev.scripted import ToolCall
from livekit_otel_dev.scripted.tools import DEFAULT_INSTRUCTIONS
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, setup_langfuse
from livekit_otel.setup import installed as setup_state
from support.langfuse_mapper import LangfuseObservation, LangfuseView, map_spans

PUBLIC_KEY = "pk-lf-realtime-test"
SECRET_KEY = "sk-lf-realtime-test"
AUTHORIZATION = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
GREETING = "Hello! How can I help?"
ANSWER = "It is sunny in Paris today."
STORY = "Once upon a time there was a fox who lived by a river and " * 4
SCRIPT = [
    RealtimeTurn(
        "what is the weather in Paris", reply=WEATHER, follow_up=ANSWER, transcript="after"
    ),
    RealtimeTurn("tell me a story", reply=RealtimeReply(STORY, until_interrupted=True)),
    RealtimeTurn("never mind"),
]


class Call:
    def __init__(self, run: RealtimeRun, view: LangfuseView) -> None:
        self.run = run
        self.view = view

    def response(self, response_id: str) -> LangfuseObservation:
        (found,) = [
            obs
            for obs in self.view.named("realtime_response")
            if obs.attributes.get("gen_ai.response.id") == response_id
        ]
        return found


def _json(value: Any) -> Any:
    """Langfuse stores the JSON text of an input or output and shows it parsed."""
    assert isinstance(value, str), f"expected a JSON string, got {value!r}"
    return json.loads(value)


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def _export(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> Iterator[Call]:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    receiver.require_header("authorization", AUTHORIZATION)
    _uninstrument()
    provider: TracerProvider = setup_langfuse(
        host=receiver.url,
        public_key=PUBLIC_KEY,
        secret_key=SECRET_KEY,
        instrument_options=options or None,
    )
    try:
        model = ScriptedRealtimeModel(silence_duration_ms=100)
        run = asyncio.run(run_realtime_session(SCRIPT, greeting=GREETING, model=model))
        assert provider.force_flush(10_000)
        yield Call(run, map_spans(receiver.spans))
    finally:
        _uninstrument()
        provider.shutdown()


@pytest.fixture
def call(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    yield from _export(otlp_receiver, monkeypatch)


@pytest.fixture
def per_turn(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Call]:
    yield from _export(otlp_receiver, monkeypatch, trace_per="turn")


def test_langfuse_keeps_every_realtime_response(call: Call) -> None:
    assert call.view.dropped == []
    assert len(call.view.named("realtime_response")) == len(call.run.response_ids)


def test_every_realtime_generation_opens_its_input_with_the_instructions(call: Call) -> None:
    for obs in call.view.named("realtime_response"):
        assert _json(obs.input)[0] == {"role": "system", "content": DEFAULT_INSTRUCTIONS}


def test_the_answer_after_a_tool_shows_the_question_the_call_and_the_result(call: Call) -> None:
    (answer,) = [r for r in call.run.responses if r.reply.text == ANSWER]
    prompt = _json(call.response(answer.response_id).input)
    # in the order LiveKit's chat context keeps them (1.3 adds a late transcript last)
    asked = [i for i, m in enumerate(prompt) if m == {"role": "user", "content": SCRIPT[0].text}]
    called = [i for i, m in enumerate(prompt) if m.get("tool_calls")]
    answered = [i for i, m in enumerate(prompt) if m["role"] == "tool"]
    assert len(asked) == len(called) == len(answered) == 1
    assert called[0] < answered[0]


def test_langfuse_lists_the_tools_offered_to_each_realtime_response(call: Call) -> None:
    for obs in call.view.named("realtime_response"):
        definitions = json.loads(obs.attributes["gen_ai.tool.definitions"])
        assert sorted(d["name"] for d in definitions) == ["book_table", "lookup_weather"]


def test_every_realtime_response_with_output_has_a_completion_start_time(call: Call) -> None:
    for response in call.run.responses:
        obs = call.response(response.response_id)
        assert obs.completion_start_time is not None, response.response_id
        started = datetime.fromisoformat(obs.completion_start_time).timestamp()
        first = response.first_audio_at or response.first_text_at or response.first_call_at
        assert first is not None
        assert started == pytest.approx(first, abs=0.05)


def test_the_cut_off_story_shows_only_what_was_heard(call: Call) -> None:
    (story,) = [r for r in call.run.responses if r.cancelled]
    (cut,) = [t for t in call.run.truncations if t.response_id == story.response_id]
    share = (cut.audio_end_ms / 1000) / (story.frames_sent * FRAME_SECONDS)
    heard = _json(call.response(story.response_id).output)["content"]
    assert STORY.startswith(heard)
    assert len(heard) == pytest.approx(len(STORY.strip()) * share, abs=12)


def test_per_turn_realtime_traces_are_named_after_their_reply(per_turn: Call) -> None:
    names = sorted(str(trace.name) for trace in per_turn.view.traces.values())
    replies = len(per_turn.view.named("agent_turn"))
    assert names == sorted(["agent_session"] + ["agent_turn"] * replies)


def test_per_turn_realtime_utterances_are_in_the_trace_of_their_reply(per_turn: Call) -> None:
    utterances = per_turn.view.named("user_turn")
    assert len(utterances) == len(SCRIPT)
    for obs in utterances:
        parent = per_turn.view.by_id(obs.parent_id or "")
        assert parent is not None and parent.span_name == "agent_turn"
        assert parent.trace_id == obs.trace_id


def test_no_per_turn_realtime_observation_starts_before_its_trace_root(per_turn: Call) -> None:
    roots = {obs.trace_id: obs for obs in per_turn.view.observations if obs.parent_id is None}
    early = [
        obs.span_name
        for obs in per_turn.view.observations
        if obs.start_ns < roots[obs.trace_id].start_ns
    ]
    assert early == []
