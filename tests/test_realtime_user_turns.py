"""Realtime user turns dated where the speech ended, and latency measured from there.

A realtime model's server ends the user's turn a silence window after the speech ended,
and its message arrives later still (buffering). The scripted model waits its configured
``silence_duration_ms`` and a ``stop_delay`` before it says ``input_speech_stopped``, and
records when the speech truly ended: the truth every check compares with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from livekit_otel_dev.realtime import (
    RealtimeConversation,
    RealtimeRun,
    RealtimeUtterance,
    ScriptedRealtimeModel,
)
from livekit_otel_dev.scripted import ToolCall
from opentelemetry.sdk.trace import ReadableSpan

from support.tracing import SpanTree, attributes, instrumented

SILENCE_MS = 400  # the model's server-side silence window
STOP_DELAY = 0.03  # the server's message on its way after the window
TARGET = 0.2  # issue 17: within 0.2 s of the truth
WEATHER = ToolCall("lookup_weather", {"location": "Paris"})


class Call:
    def __init__(
        self, run: RealtimeRun, tree: SpanTree, utterances: list[RealtimeUtterance]
    ) -> None:
        self.run = run
        self.tree = tree
        self.utterances = utterances

    def user_turns(self) -> list[ReadableSpan]:
        return sorted(self.tree.named("user_turn"), key=lambda s: s.start_time or 0)

    def reply_to(self, utterance: RealtimeUtterance) -> dict[str, object]:
        """The agent_turn that played the response the server started after ``utterance``."""
        (span,) = [
            s
            for s in self.tree.named("realtime_response")
            if attributes(s).get("gen_ai.response.id") == utterance.response_id
        ]
        parent = self.tree.parent_of(span)
        assert parent is not None
        return attributes(parent)

    def heard_at(self, utterance: RealtimeUtterance) -> float:
        """When the first frame of the reply to ``utterance`` reached the audio output."""
        speech_id = self.run.response(str(utterance.response_id)).speech_id
        frames = [
            r.first_frame_handed_at
            for r in self.run.responses
            if r.speech_id == speech_id and r.first_frame_handed_at is not None
        ]
        return min(frames)


@pytest.fixture(scope="module")
def call() -> Iterator[Call]:
    async def converse() -> tuple[RealtimeRun, list[RealtimeUtterance]]:
        model = ScriptedRealtimeModel(silence_duration_ms=SILENCE_MS, stop_delay=STOP_DELAY)
        conversation = RealtimeConversation(model=model)
        await conversation.start()
        spoken = [
            await conversation.user_speaks("hello there"),
            await conversation.user_speaks(
                "what is the weather in Paris", reply=WEATHER, follow_up="It is sunny."
            ),
        ]
        return await conversation.aclose(), spoken

    with instrumented() as tracing:
        run, utterances = asyncio.run(converse())
        yield Call(run, tracing.tree(), utterances)


def test_the_kit_ends_the_turn_a_silence_window_after_the_speech(call: Call) -> None:
    for utterance in call.utterances:
        assert utterance.speech_stopped_at is not None and utterance.speech_ended_at is not None
        late = utterance.speech_stopped_at - utterance.speech_ended_at
        assert late >= SILENCE_MS / 1000 + STOP_DELAY


def test_a_realtime_user_turn_ends_where_the_speech_ended(call: Call) -> None:
    for span, utterance in zip(call.user_turns(), call.utterances, strict=True):
        assert (span.end_time or 0) / 1e9 == pytest.approx(utterance.speech_ended_at, abs=TARGET)


def test_a_realtime_user_turn_starts_where_the_speech_started(call: Call) -> None:
    for span, utterance in zip(call.user_turns(), call.utterances, strict=True):
        started = (span.start_time or 0) / 1e9
        assert started == pytest.approx(utterance.speech_started_at, abs=TARGET)


def test_a_realtime_user_turn_lasts_while_the_user_speaks(call: Call) -> None:
    for span, utterance in zip(call.user_turns(), call.utterances, strict=True):
        assert utterance.speech_ended_at is not None
        spoke = utterance.speech_ended_at - utterance.speech_started_at
        lasted = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
        assert lasted > 0
        assert lasted == pytest.approx(spoke, abs=TARGET)


def test_realtime_perceived_latency_runs_from_the_end_of_speech(call: Call) -> None:
    for utterance in call.utterances:
        assert utterance.speech_ended_at is not None
        waited = call.heard_at(utterance) - utterance.speech_ended_at
        measured = call.reply_to(utterance)["lk.turn.perceived_latency"]
        assert measured == pytest.approx(waited, abs=TARGET)


def test_the_silence_window_is_counted_as_end_of_turn_latency(call: Call) -> None:
    for utterance in call.utterances:
        turn = call.reply_to(utterance)
        assert turn["lk.turn.latency.end_of_turn"] >= SILENCE_MS / 1000


async def test_a_typed_realtime_turn_lasts_until_the_server_has_the_message() -> None:
    model = ScriptedRealtimeModel(chat_ctx_update_delay=0.15)
    with instrumented() as tracing:
        conversation = RealtimeConversation(model=model)
        await conversation.start()
        await conversation.user_types("hello by text")
        run = await conversation.aclose()
        tree = tracing.tree()
    sent, acknowledged = run.stamps("chat_ctx.update")[-1], run.stamps("chat_ctx.updated")[-1]
    (turn,) = tree.named("user_turn")
    assert (turn.start_time or 0) / 1e9 == pytest.approx(sent.at, abs=0.05)
    assert (turn.end_time or 0) / 1e9 == pytest.approx(acknowledged.at, abs=0.05)
