"""The development kit's scripted realtime model, as LiveKit itself takes it (no instrumentation).

A real ``AgentSession`` runs on ``livekit_otel_dev.realtime.ScriptedRealtimeModel`` with no
VAD and the model's server-side turn detection: a greeting, a spoken question answered by
a tool call and a spoken follow-up (with a late transcript), a story the user barges in
on, and a reply whose transcript arrives while it plays; then the same through text input.
Every check reads what LiveKit recorded (history, metrics, speech handles, events) against
what the script stamped. Release differences come from the kit's ``FEATURES``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents.metrics import RealtimeModelMetrics, STTMetrics
from livekit_otel_dev.realtime import (
    FEATURES,
    RealtimeConversation,
    RealtimeReply,
    RealtimeRun,
    RealtimeTurn,
    RealtimeUsage,
    ScriptedRealtimeModel,
    realtime_session_options,
    run_realtime_session,
)
from livekit_otel_dev.scripted import ToolCall

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
STORY = (
    "Once upon a time a dragon guarded a library in the mountains, and every night it read "
    "one more book to the stars."
)
GREETING = "Hello! How can I help?"
FOLLOW_UP = "It is sunny and 21 degrees in Paris."
USAGE = RealtimeUsage(
    input_text_tokens=1200,
    input_audio_tokens=150,
    cached_text_tokens=1024,
    cached_audio_tokens=64,
    output_text_tokens=40,
    output_audio_tokens=180,
)
SCRIPT = [
    RealtimeTurn(
        "what is the weather in Paris", reply=WEATHER, follow_up=FOLLOW_UP, transcript="after"
    ),
    RealtimeTurn("tell me a story", reply=RealtimeReply(STORY, until_interrupted=True)),
    RealtimeTurn("never mind", reply=RealtimeReply("Sure.", usage=USAGE), transcript="during"),
]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Recorded:
    run: RealtimeRun
    logged: list[str]
    """ERROR records of the "livekit.agents" logger during the run."""


def _record(mode: str) -> Recorded:
    handler = _Errors()
    lk_logger = logging.getLogger("livekit.agents")
    lk_logger.addHandler(handler)
    try:
        run = asyncio.run(run_realtime_session(SCRIPT, mode=mode, greeting=GREETING))  # type: ignore[arg-type]
    finally:
        lk_logger.removeHandler(handler)
    return Recorded(run, [f"{r.levelname} {r.getMessage()}" for r in handler.records])


@pytest.fixture(scope="module")
def audio() -> Recorded:
    return _record("audio")


@pytest.fixture(scope="module")
def text() -> Recorded:
    return _record("text")


@pytest.fixture
def livekit_errors() -> Iterator[list[logging.LogRecord]]:
    handler = _Errors()
    lk_logger = logging.getLogger("livekit.agents")
    lk_logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        lk_logger.removeHandler(handler)


def conversation(run: RealtimeRun) -> list[tuple[str, str]]:
    """The history's messages and tool items as (kind, text)."""
    items: list[tuple[str, str]] = []
    for item in run.history:
        kind = item.get("type")
        if kind == "message":
            items.append((item["role"], " ".join(c for c in item["content"] if isinstance(c, str))))
        elif kind == "function_call":
            items.append(("call", item["name"]))
        elif kind == "function_call_output":
            items.append(("output", item["name"]))
    return items


def message(run: RealtimeRun, role: str, text: str) -> dict[str, Any]:
    return next(i for i in run.history if i.get("role") == role and text in i["content"][0])


# -- the audio conversation ---------------------------------------------------------------


def test_livekit_logs_no_error(audio: Recorded, text: Recorded) -> None:
    assert audio.logged == []
    assert text.logged == []
    assert audio.run.errors == [] and text.run.errors == []


def test_history_holds_the_conversation_in_order(audio: Recorded) -> None:
    run = audio.run
    question = ("user", "what is the weather in Paris")
    tool = [("call", "lookup_weather"), ("output", "lookup_weather")]
    # the late transcript: dated by when the user spoke where LiveKit has `turn_started_at`,
    # else by its arrival, after the tool call that answered it
    first = [question, *tool] if FEATURES.transcript_turn_started_at else [*tool, question]
    # "never mind" is transcribed while its reply plays: after it where the arrival dates it
    never = [("user", "never mind"), ("assistant", "Sure.")]
    if not FEATURES.transcript_turn_started_at:
        never.reverse()
    assert conversation(run) == [
        ("assistant", GREETING),
        *first,
        ("assistant", FOLLOW_UP),
        ("user", "tell me a story"),
        ("assistant", STORY),
        *never,
    ]


def test_the_tool_ran_and_its_answer_is_a_second_response_of_the_same_speech(
    audio: Recorded,
) -> None:
    run = audio.run
    output = next(i for i in run.history if i.get("type") == "function_call_output")
    assert "sunny" in output["output"] and not output["is_error"]
    greeting, call, answer, story, never = run.responses
    assert call.reply.tool_calls == (WEATHER,) and call.message_id is None
    assert call.call_ids == [output["call_id"]]
    assert not call.user_initiated and answer.user_initiated  # answer: LiveKit's generate_reply
    assert call.speech_id is not None and call.speech_id == answer.speech_id
    assert len({r.speech_id for r in run.responses}) == 4
    assert [h.id for h in run.speech_handles] == [
        greeting.speech_id,
        call.speech_id,
        story.speech_id,
        never.speech_id,
    ]
    rt = run.model.sessions[-1]
    assert [c["speech_id"] for c in rt.generate_reply_calls] == [greeting.speech_id, call.speech_id]


def test_the_barge_in_interrupts_the_streaming_story(audio: Recorded) -> None:
    run = audio.run
    story = run.responses[3]
    assert story.status == "cancelled" and story.cancelled
    assert [r.response_id for r in run.responses if r.cancelled] == [story.response_id]
    assert message(run, "assistant", "Once upon")["interrupted"] is True
    assert not any(i.get("interrupted") for i in run.history if "Once upon" not in str(i))
    (cut,) = run.truncations
    assert cut.message_id == story.message_id and cut.response_id == story.response_id
    assert cut.modalities == ["audio", "text"]
    assert 0 < cut.audio_end_ms <= story.frames_sent * 100  # what had played
    assert cut.audio_transcript == STORY
    barge = run.utterances[2]
    assert story.first_frame_handed_at is not None
    assert story.first_frame_handed_at < barge.speech_started_at < cut.at
    assert run.model.sessions[-1].cancelled_by_interrupt == [story.response_id]


def test_one_metrics_per_response_with_its_request_id(audio: Recorded) -> None:
    run = audio.run
    metrics = run.realtime_metrics
    assert sorted(m.request_id for m in metrics) == sorted(run.response_ids)
    assert [m.request_id for m in metrics] == [r.response_id for r in run.responses]
    greeting, call, answer, story, never = run.responses
    for rec in run.responses:
        m = run.metrics_for(rec.response_id)
        assert m is rec.metrics
        assert m.cancelled is rec.cancelled
        assert m.timestamp == rec.created_at
        assert rec.done_at is not None and m.duration == pytest.approx(rec.done_at - rec.created_at)
        assert m.label == run.model.label
        assert m.metadata is not None
        assert (m.metadata.model_name, m.metadata.model_provider) == (
            "gpt-4o-realtime-preview",
            "api.openai.com",
        )
    assert call.metrics is not None and call.metrics.ttft == -1  # function only
    for rec in (greeting, answer, story, never):
        assert rec.metrics is not None and rec.first_audio_at is not None
        assert rec.metrics.ttft == pytest.approx(rec.first_audio_at - rec.created_at)
        assert rec.metrics.ttft > 0
    assert [m.cancelled for m in metrics] == [False, False, False, True, False]


def test_metrics_carry_the_full_token_details(audio: Recorded) -> None:
    run = audio.run
    never = run.responses[4]
    m = run.metrics_for(never.response_id)
    assert m is not None
    assert (m.input_tokens, m.output_tokens, m.total_tokens) == (1350, 220, 1570)
    details = m.input_token_details
    assert (details.text_tokens, details.audio_tokens, details.cached_tokens) == (1200, 150, 1088)
    assert details.cached_tokens_details is not None
    assert (
        details.cached_tokens_details.text_tokens,
        details.cached_tokens_details.audio_tokens,
    ) == (
        1024,
        64,
    )
    out = m.output_token_details
    assert (out.text_tokens, out.audio_tokens) == (40, 180)
    assert m.tokens_per_second == pytest.approx(220 / m.duration)
    # estimated usage: audio in from the second response on, cached after the first
    answer = run.metrics_for(run.responses[2].response_id)
    assert answer is not None
    assert answer.input_token_details.audio_tokens > 0
    assert answer.input_token_details.cached_tokens > 0
    assert (
        answer.output_token_details.audio_tokens > 0 and answer.output_token_details.text_tokens > 0
    )
    for metric in run.realtime_metrics:
        assert metric.total_tokens == metric.input_tokens + metric.output_tokens


def test_connection_metrics_where_the_release_reports_them(audio: Recorded) -> None:
    run = audio.run
    conn = run.connection_metrics
    if not FEATURES.connection_metrics:
        assert conn == []
        return
    (only,) = conn
    assert only.request_id == "" and only.input_tokens == 0
    assert only.acquire_time == pytest.approx(run.model.connection_acquire_time)  # type: ignore[attr-defined]
    assert run.metrics.index(only) == 0  # before any turn


def test_server_turn_detection_drives_the_user_state(audio: Recorded) -> None:
    run = audio.run
    states = [ev.new_state for ev in run.events_named("user_state_changed")]
    assert states == ["speaking", "listening"] * 3
    assert len(run.utterances) == 3
    prompted = (run.responses[1], run.responses[3], run.responses[4])
    for utt, rec in zip(run.utterances, prompted, strict=True):
        assert utt.speech_stopped_at is not None and utt.transcript_at is not None
        assert utt.speech_started_at < utt.speech_stopped_at <= rec.created_at
        assert utt.response_id == rec.response_id
        assert utt.frames_pushed == 5 and utt.frames_received == 5  # audio in reached the model
    assert run.model.sessions[-1].audio_frames_received == 15
    finals = [ev.transcript for ev in run.events_named("user_input_transcribed") if ev.is_final]
    assert finals == ["what is the weather in Paris", "tell me a story", "never mind"]


def test_late_and_during_transcripts(audio: Recorded) -> None:
    run = audio.run
    late, _, during = run.utterances
    call, answer = run.responses[1], run.responses[2]
    assert call.done_at is not None and late.transcript_at is not None
    assert call.done_at <= late.transcript_at  # after the response it prompted
    assert late.transcript_at < (answer.first_audio_at or 0)
    never = run.responses[4]
    assert during.transcript_at is not None and never.first_audio_at is not None
    assert never.first_audio_at <= during.transcript_at
    items = {item.id: item for item in run.session.history.items}
    for utt in (late, during):
        user_msg = items[utt.item_id]
        if FEATURES.transcript_turn_started_at:
            assert user_msg.created_at == utt.speech_started_at
        else:
            assert user_msg.created_at >= utt.transcript_at  # type: ignore[operator]


def test_the_script_stamps_the_first_frame_handed_to_the_output(audio: Recorded) -> None:
    run = audio.run
    for rec in run.responses:
        if rec.frames_sent == 0:
            assert rec.first_frame_handed_at is None
            continue
        assert rec.first_audio_at is not None and rec.first_frame_handed_at is not None
        assert rec.created_at < rec.first_audio_at <= rec.first_frame_handed_at
    stamps = [s.ref for s in run.stamps("output.first_frame")]
    assert stamps == [r.response_id for r in run.responses if r.frames_sent]
    speaking = [
        t
        for t, name, ev in run.events
        if name == "agent_state_changed" and ev.new_state == "speaking"
    ]
    assert len(speaking) == 4  # greeting, answer, story, "Sure."


def test_metrics_come_before_the_reply_ends_as_with_openai(audio: Recorded) -> None:
    """OpenAI's plugin closes a response's streams and emits its metrics in one step, so
    LiveKit adds the assistant message (and ends the speech) after the metrics."""
    run = audio.run
    order = [
        ("metrics", ev.metrics.request_id)
        if name == "metrics_collected"
        else ("message", ev.item.id)
        for _, name, ev in run.events
        if (name == "metrics_collected" and isinstance(ev.metrics, RealtimeModelMetrics))
        or (name == "conversation_item_added" and getattr(ev.item, "role", None) == "assistant")
    ]
    for rec in run.responses:
        if rec.cancelled or rec.message_id is None:
            continue
        assert order.index(("metrics", rec.response_id)) < order.index(("message", rec.message_id))
    call = run.responses[1]
    executed = next(t for t, name, _ in run.events if name == "function_tools_executed")
    assert call.done_at is not None and call.done_at < executed


def test_transcription_metrics_where_the_release_reports_them(audio: Recorded) -> None:
    stt = [m for m in audio.run.metrics if isinstance(m, STTMetrics)]
    if not audio.run.model.transcription_metrics:
        assert stt == []
        return
    assert len(stt) == 3
    assert all(m.metadata and m.metadata.model_name == "gpt-4o-transcribe" for m in stt)


# -- text input ---------------------------------------------------------------------------


def test_text_input_through_session_run(text: Recorded) -> None:
    run = text.run
    assert conversation(run) == [
        ("assistant", GREETING),
        ("user", "what is the weather in Paris"),
        ("call", "lookup_weather"),
        ("output", "lookup_weather"),
        ("assistant", FOLLOW_UP),
        ("user", "tell me a story"),
        ("assistant", STORY),
        ("user", "never mind"),
        ("assistant", "Sure."),
    ]
    assert run.utterances == [] and run.events_named("user_state_changed") == []
    assert all(r.user_initiated for r in run.responses)
    _, call, answer, story, _ = run.responses
    assert call.speech_id == answer.speech_id
    assert message(run, "assistant", "Once upon")["interrupted"] is True
    assert [r.cancelled for r in run.responses] == [False, False, False, True, False]
    assert [m.request_id for m in run.realtime_metrics] == run.response_ids
    assert [m.cancelled for m in run.realtime_metrics] == [False, False, False, True, False]
    (cut,) = run.truncations
    assert cut.message_id == story.message_id


async def test_text_input_through_generate_reply(livekit_errors: list[logging.LogRecord]) -> None:
    conv = RealtimeConversation()
    await conv.start()
    handle = await conv.user_types("hi there", reply="Hi!", via="generate_reply")
    run = await conv.aclose()
    assert handle.done() and not handle.interrupted
    assert conversation(run) == [("user", "hi there"), ("assistant", "Hi!")]
    (rec,) = run.responses
    assert rec.user_initiated and rec.speech_id == handle.id
    assert [m.request_id for m in run.realtime_metrics] == [rec.response_id]
    assert livekit_errors == []


# -- errors, options ------------------------------------------------------------------------


async def test_a_failed_response_emits_metrics_then_a_recoverable_error(
    livekit_errors: list[logging.LogRecord],
) -> None:
    conv = RealtimeConversation()
    await conv.start()
    await conv.user_speaks("hello", reply=RealtimeReply("Hel", error="rate limit exceeded"))
    await conv.user_speaks("are you there")
    run = await conv.aclose()
    failed, ok = run.responses
    assert (failed.status, ok.status) == ("failed", "completed")
    assert [m.request_id for m in run.realtime_metrics] == [failed.response_id, ok.response_id]
    (error,) = run.errors
    assert error.error.recoverable is True
    assert "rate limit exceeded" in str(error.error.error)
    assert conversation(run)[-1] == ("assistant", "You said: are you there.")
    assert livekit_errors == []


async def test_an_error_from_the_session(livekit_errors: list[logging.LogRecord]) -> None:
    conv = RealtimeConversation()
    await conv.start()
    conv.rt_session.emit_error("transient glitch")
    await asyncio.sleep(0)
    run = await conv.aclose()
    (error,) = run.errors
    assert error.error.recoverable is True and error.error.label == run.model.label
    assert livekit_errors == []


def test_session_options_are_feature_detected() -> None:
    opts = realtime_session_options()
    assert opts["vad"] is None
    if FEATURES.turn_handling_option:
        assert opts["turn_handling"]["turn_detection"] == "realtime_llm"
        assert "turn_detection" not in opts
    else:
        assert opts["turn_detection"] == "realtime_llm" and "turn_handling" not in opts


def test_it_runs_fast(audio: Recorded, text: Recorded) -> None:
    assert audio.run.elapsed < 3.0 and text.run.elapsed < 3.0
    assert isinstance(audio.run.metrics[-1], (RealtimeModelMetrics, STTMetrics))


async def test_the_server_says_speech_stopped_a_silence_window_after_the_speech_ended() -> None:
    model = ScriptedRealtimeModel(silence_duration_ms=150, stop_delay=0.03)
    conversation = RealtimeConversation(model=model)
    await conversation.start()
    utt = await conversation.user_speaks("hello there")
    run = await conversation.aclose()
    assert utt.speech_ended_at is not None and utt.speech_stopped_at is not None
    assert utt.speech_stopped_at - utt.speech_ended_at >= 0.15 + 0.03
    assert run.model._opts.turn_detection.silence_duration_ms == 150
    stopped = run.stamps("user.speech_stopped")[0].at
    assert stopped == utt.speech_stopped_at


async def test_audio_end_ms_is_the_end_of_speech_on_the_servers_audio_timeline() -> None:
    model = ScriptedRealtimeModel(silence_duration_ms=100)
    conversation = RealtimeConversation(model=model)
    await conversation.start()
    utt = await conversation.user_speaks("hello there")
    await conversation.aclose()
    assert utt.speech_ended_at is not None and utt.audio_end_ms is not None
    opened = model.sessions[-1].created_at
    assert utt.audio_end_ms == round((utt.speech_ended_at - opened) * 1000)
