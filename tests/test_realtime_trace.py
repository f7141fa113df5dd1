"""Realtime (speech-to-speech) models: each response one generation, one user turn per utterance.

A scripted realtime model (the development kit's, emitting what OpenAI's plugin emits)
runs a real ``AgentSession``: a greeting, a question answered by a tool call and a spoken
follow-up with a late transcript, and a story the user barges in on. Expected values come
from the script and from LiveKit's own metrics objects of the same call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from livekit_otel_dev.realtime import (
    FRAME_SECONDS,
    RealtimeReply,
    RealtimeRun,
    RealtimeTurn,
    run_realtime_session,
)
from livekit_otel_dev.scripted import ToolCall
from opentelemetry.sdk.trace import ReadableSpan

from support.tracing import SpanTree, attributes, input_of, instrumented, output_of, within

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
# Langfuse's default prices for gpt-4o-realtime-preview, per token, by usage key
PRICES = {
    "input_text_tokens": 5e-6,
    "input_cached_text_tokens": 2.5e-6,
    "output_text_tokens": 2e-5,
    "input_audio_tokens": 1e-4,
    "input_cached_audio_tokens": 2e-5,
    "output_audio_tokens": 2e-4,
}


class Call:
    def __init__(self, run: RealtimeRun, tree: SpanTree) -> None:
        self.run = run
        self.tree = tree

    def response(self, response_id: str) -> ReadableSpan:
        (span,) = [
            s
            for s in self.tree.named("realtime_response")
            if attributes(s).get("gen_ai.response.id") == response_id
        ]
        return span

    def metrics(self, response_id: str) -> object:
        (metrics,) = [m for m in self.run.realtime_metrics if m.request_id == response_id]
        return metrics


@pytest.fixture(scope="module", params=["audio"])
def call(request: pytest.FixtureRequest) -> Iterator[Call]:
    with instrumented() as tracing:
        run = asyncio.run(run_realtime_session(SCRIPT, mode=request.param, greeting=GREETING))
        yield Call(run, tracing.tree())


def test_each_response_of_the_model_is_one_realtime_response_span(call: Call) -> None:
    ids = [attributes(s)["gen_ai.response.id"] for s in call.tree.named("realtime_response")]
    assert sorted(ids) == sorted(call.run.response_ids)


def test_each_realtime_response_is_a_langfuse_generation_with_model_and_provider(
    call: Call,
) -> None:
    for span in call.tree.named("realtime_response"):
        values = attributes(span)
        assert values["langfuse.observation.type"] == "generation"
        assert values["gen_ai.request.model"] == call.run.model.model
        assert values["gen_ai.provider.name"] == "openai"


def test_each_realtime_response_is_a_child_of_its_agent_turn(call: Call) -> None:
    for span in call.tree.named("realtime_response"):
        parent = call.tree.parent_of(span)
        assert parent is not None and parent.name == "agent_turn"
        assert within(span, parent)


def test_realtime_usage_lands_on_langfuse_price_keys_without_overlap(call: Call) -> None:
    for response_id in call.run.response_ids:
        metrics = call.metrics(response_id)
        values = attributes(call.response(response_id))
        inputs, outputs = metrics.input_token_details, metrics.output_token_details
        cached = inputs.cached_tokens_details
        priced = {
            key.removeprefix("gen_ai.usage."): value
            for key, value in values.items()
            if key.removeprefix("gen_ai.usage.") in PRICES
        }
        expected = {
            "input_text_tokens": inputs.text_tokens - cached.text_tokens,
            "input_cached_text_tokens": cached.text_tokens,
            "input_audio_tokens": inputs.audio_tokens - cached.audio_tokens,
            "input_cached_audio_tokens": cached.audio_tokens,
            "output_text_tokens": outputs.text_tokens,
            "output_audio_tokens": outputs.audio_tokens,
        }
        assert priced == {key: count for key, count in expected.items() if count > 0}
        # the total goes to Langfuse with the splits (its usage details), as one object
        details = json.loads(values["langfuse.observation.usage_details"])
        assert details["total"] == metrics.total_tokens


def test_a_priced_realtime_model_gets_a_cost_from_its_audio_and_text_tokens(call: Call) -> None:
    for response_id in call.run.response_ids:
        values = attributes(call.response(response_id))
        cost = sum(price * values.get(f"gen_ai.usage.{key}", 0) for key, price in PRICES.items())
        metrics = call.metrics(response_id)
        if metrics.output_token_details.audio_tokens:
            assert cost >= metrics.output_token_details.audio_tokens * PRICES["output_audio_tokens"]


def test_completion_start_comes_from_the_first_audio_token(call: Call) -> None:
    for response_id in call.run.response_ids:
        metrics = call.metrics(response_id)
        if metrics.ttft < 0:
            continue
        values = attributes(call.response(response_id))
        start = datetime.fromisoformat(values["langfuse.observation.completion_start_time"])
        assert start.timestamp() == pytest.approx(metrics.timestamp + metrics.ttft, abs=1e-3)


def test_a_response_that_only_calls_a_tool_starts_completing_at_its_first_call(
    call: Call,
) -> None:
    (asked,) = [r for r in call.run.responses if r.reply.tool_calls]
    assert call.metrics(asked.response_id).ttft < 0  # LiveKit reports no first token
    values = attributes(call.response(asked.response_id))
    start = datetime.fromisoformat(values["langfuse.observation.completion_start_time"])
    assert start.timestamp() == pytest.approx(asked.first_call_at, abs=0.05)


def test_the_spoken_response_outputs_its_transcript(call: Call) -> None:
    spoken = [r for r in call.run.responses if r.reply.text == ANSWER]
    (answer,) = spoken
    output = json.loads(output_of(call.response(answer.response_id)))
    assert output["content"] == ANSWER


def test_the_tool_call_response_outputs_its_tool_call(call: Call) -> None:
    (asked,) = [r for r in call.run.responses if r.reply.tool_calls]
    output = json.loads(output_of(call.response(asked.response_id)))
    assert [c["function"]["name"] for c in output["tool_calls"]] == [WEATHER.name]


def test_a_response_answering_speech_has_the_late_transcript_as_its_last_input(
    call: Call,
) -> None:
    (asked,) = [r for r in call.run.responses if r.reply.tool_calls]
    asked_for = json.loads(input_of(call.response(asked.response_id)))
    assert asked_for[-1] == {"role": "user", "content": SCRIPT[0].text}


def test_a_realtime_prompt_opens_with_the_agents_instructions(call: Call) -> None:
    for response_id in call.run.response_ids:
        prompt = json.loads(input_of(call.response(response_id)))
        assert prompt[0] == {
            "role": "system",
            "content": call.run.session.current_agent.instructions,
        }


def test_the_greeting_has_the_instructions_as_its_prompt(call: Call) -> None:
    (greeting,) = [r for r in call.run.responses if r.reply.text == GREETING]
    prompt = json.loads(input_of(call.response(greeting.response_id)))
    assert [message["role"] for message in prompt] == ["system"]


def test_the_answer_after_a_tool_has_the_tool_result_in_its_prompt(call: Call) -> None:
    (answer,) = [r for r in call.run.responses if r.reply.text == ANSWER]
    prompt = json.loads(input_of(call.response(answer.response_id)))
    (output,) = [item for item in call.run.history if item["type"] == "function_call_output"]
    tool_messages = [m for m in prompt if m["role"] == "tool"]
    assert tool_messages == [
        {
            "role": "tool",
            "tool_call_id": output["call_id"],
            "name": output["name"],
            "content": output["output"],
        }
    ]


def test_each_realtime_response_lists_the_tools_it_was_offered(call: Call) -> None:
    names = sorted(["lookup_weather", "book_table"])  # the scripted agent's tools
    for response_id in call.run.response_ids:
        definitions = json.loads(attributes(call.response(response_id))["gen_ai.tool.definitions"])
        assert sorted(d["name"] for d in definitions) == names


def test_an_interrupted_response_outputs_only_what_was_heard(call: Call) -> None:
    (story,) = [r for r in call.run.responses if r.cancelled]
    (cut,) = [t for t in call.run.truncations if t.response_id == story.response_id]
    share = (cut.audio_end_ms / 1000) / (story.frames_sent * FRAME_SECONDS)
    heard = json.loads(output_of(call.response(story.response_id)))["content"]
    assert 0 < share < 1
    assert STORY.startswith(heard)
    assert len(heard) == pytest.approx(len(STORY.strip()) * share, abs=12)


def test_an_interrupted_realtime_turn_says_only_what_was_heard(call: Call) -> None:
    (story,) = [r for r in call.run.responses if r.cancelled]
    turn = call.tree.parent_of(call.response(story.response_id))
    heard = json.loads(output_of(call.response(story.response_id)))["content"]
    assert output_of(turn) == heard


def test_an_interrupted_response_is_a_warning(call: Call) -> None:
    (story,) = [r for r in call.run.responses if r.cancelled]
    values = attributes(call.response(story.response_id))
    assert values["langfuse.observation.level"] == "WARNING"
    assert values["lk.realtime.cancelled"] is True


def test_the_tool_runs_as_a_function_tool_span_of_the_same_turn(call: Call) -> None:
    (tool,) = call.tree.named("function_tool")
    (asked,) = [r for r in call.run.responses if r.reply.tool_calls]
    turn = call.tree.parent_of(call.response(asked.response_id))
    assert call.tree.parent_of(tool) == turn


def test_one_user_turn_per_utterance(call: Call) -> None:
    transcripts = [output_of(s) for s in call.tree.named("user_turn")]
    assert sorted(transcripts) == sorted(turn.text for turn in SCRIPT)


def test_every_span_lies_within_its_parent(call: Call) -> None:
    outside = [
        span.name
        for span in call.tree.spans
        if (parent := call.tree.parent_of(span)) is not None and not within(span, parent)
    ]
    assert outside == []


def test_user_turns_span_the_scripted_speech(call: Call) -> None:
    spans = sorted(call.tree.named("user_turn"), key=lambda s: s.start_time or 0)
    for span, utterance in zip(spans, call.run.utterances, strict=True):
        assert (span.start_time or 0) / 1e9 == pytest.approx(utterance.speech_started_at, abs=0.02)
        assert (span.end_time or 0) / 1e9 == pytest.approx(utterance.speech_ended_at, abs=0.02)


def test_session_usage_totals_include_realtime_tokens(call: Call) -> None:
    values = attributes(call.tree.one("agent_session"))
    every = call.run.realtime_metrics
    assert values["lk.usage.realtime_input_tokens"] == sum(m.input_tokens for m in every)
    assert values["lk.usage.realtime_output_tokens"] == sum(m.output_tokens for m in every)
    assert values["lk.usage.realtime_output_audio_tokens"] == sum(
        m.output_token_details.audio_tokens for m in every
    )


def test_connection_metrics_go_on_the_session(call: Call) -> None:
    values = attributes(call.tree.one("agent_session"))
    if not call.run.connection_metrics:
        pytest.skip("this livekit-agents release reports no realtime connection metrics")
    (connection,) = call.run.connection_metrics
    assert values["lk.realtime.acquire_time"] == pytest.approx(connection.acquire_time)


def test_a_realtime_turn_has_the_latency_from_end_of_speech_to_first_frame(call: Call) -> None:
    (asked,) = [r for r in call.run.responses if r.reply.tool_calls]
    (answer,) = [r for r in call.run.responses if r.reply.text == ANSWER]
    utterance = call.run.utterances[0]
    turn = attributes(call.tree.parent_of(call.response(asked.response_id)))
    expected = answer.first_frame_handed_at - utterance.speech_ended_at
    assert turn["lk.turn.perceived_latency"] == pytest.approx(expected, abs=0.02)
    parts = sum(value for key, value in turn.items() if key.startswith("lk.turn.latency."))
    assert parts == pytest.approx(turn["lk.turn.perceived_latency"], abs=1e-3)


def test_the_greeting_has_no_perceived_latency(call: Call) -> None:
    (greeting,) = [r for r in call.run.responses if r.reply.text == GREETING]
    turn = attributes(call.tree.parent_of(call.response(greeting.response_id)))
    assert "lk.turn.perceived_latency" not in turn


async def test_a_transcript_dated_long_before_the_session_stays_one_turn_within_it() -> None:
    # LiveKit's own realtime tests send transcripts whose turn start is 1_000_000.0 (1970)
    from livekit.agents import llm
    from livekit_otel_dev.realtime import RealtimeConversation

    fields = {"item_id": "item_late", "transcript": "words from long ago", "is_final": True}
    if "turn_started_at" in {f.name for f in dataclasses.fields(llm.InputTranscriptionCompleted)}:
        fields["turn_started_at"] = 1_000_000.0
    with instrumented() as tracing:
        conversation = RealtimeConversation()
        await conversation.start()
        realtime = conversation.model.active_session
        realtime.emit(
            "input_audio_transcription_completed", llm.InputTranscriptionCompleted(**fields)
        )
        await asyncio.sleep(0.05)
        await conversation.aclose()
        tree = tracing.tree()
    (turn,) = tree.named("user_turn")
    assert output_of(turn) == "words from long ago"
    assert within(turn, tree.one("agent_session"))
