"""The trace of a whole offline AgentSession: its tree, attributes, metrics and timing.

A real ``AgentSession`` runs with scripted VAD, STT, LLM, TTS and a tool (see
``livekit_otel_dev.scripted``); every expected value below comes from what LiveKit itself
emitted in the same run (its metrics objects, speech handles and chat history).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from livekit.agents.metrics import EOUMetrics, LLMMetrics, STTMetrics, TTSMetrics
from livekit.agents.telemetry import traces as builtin_traces
from livekit.agents.vad import VADEventType
from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedConversation,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from livekit_otel_dev.scripted.media import silence_frame
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from support.shapes import SPEAKING_STEP, synthesized, tool_reply, tts_nodes_per_reply
from support.tracing import (
    BUILTIN_SCOPE,
    SpanTree,
    TracedRun,
    Tracing,
    attributes,
    in_memory_provider,
    instrumented,
    metrics_attributes,
    output_of,
    trace_session,
)

WEATHER = ToolCall("lookup_weather", {"location": "Paris"})
TURNS = [
    UserTurn("hello there"),
    UserTurn("what is the weather in Paris", reply=WEATHER),
    UserTurn("thanks that is all"),
]
# attributes that make Langfuse show a span as an LLM generation
GENERATION_MARKERS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "model")
REPLY_CHILDREN = SPEAKING_STEP
TOOL_REPLY_CHILDREN = tool_reply()


def _record(mode: str) -> TracedRun:
    async def session(tracing: Tracing) -> TracedRun:
        return await trace_session(tracing, TURNS, mode=mode)

    with instrumented() as tracing:
        return asyncio.run(session(tracing))


@pytest.fixture(scope="module")
def audio() -> TracedRun:
    """One traced audio-mode session: VAD, STT, end of turn, LLM, a tool, TTS."""
    return _record("audio")


@pytest.fixture(scope="module")
def text() -> TracedRun:
    """One traced text-mode session (``session.run(user_input=...)``)."""
    return _record("text")


def agent_turns(tree: SpanTree) -> list[ReadableSpan]:
    return tree.named("agent_turn")


def speech_id(span: ReadableSpan) -> str:
    return str(attributes(span)["lk.speech_id"])


def of_speech(metrics: list[Any], speech: str) -> list[Any]:
    return [m for m in metrics if m.speech_id == speech]


def user_turns_in_reply_order(tree: SpanTree) -> list[ReadableSpan]:
    """The user turns ordered like the agent turns they triggered (paired by speech id)."""
    by_speech = {speech_id(span): span for span in tree.named("user_turn")}
    return [by_speech[speech_id(turn)] for turn in agent_turns(tree)]


# -- the tree ------------------------------------------------------------------------------
def test_audio_session_is_one_tree_under_agent_session(audio: TracedRun) -> None:
    tree = audio.tree
    assert tree.root.name == "agent_session"
    assert Counter(tree.child_names(tree.root)) == Counter(
        {"session_start": 1, "user_turn": 3, "agent_turn": 3, "session_close": 1}
    )
    assert tree.orphans() == []


def test_audio_user_turn_holds_its_end_of_turn(audio: TracedRun) -> None:
    for user_turn in audio.tree.named("user_turn"):
        assert audio.tree.child_names(user_turn) == ["end_of_turn"]


def test_audio_agent_turns_hold_llm_tool_and_tts_nodes_in_order(audio: TracedRun) -> None:
    children = [audio.tree.child_names(turn) for turn in agent_turns(audio.tree)]
    assert children == [REPLY_CHILDREN, TOOL_REPLY_CHILDREN, REPLY_CHILDREN]


def test_each_user_turn_is_paired_with_the_reply_it_triggered(audio: TracedRun) -> None:
    user_turns = user_turns_in_reply_order(audio.tree)
    transcripts = [output_of(span) for span in user_turns]
    assert transcripts == [turn.text for turn in TURNS]
    end_of_turns = [audio.tree.children_of(span)[0] for span in user_turns]
    assert [speech_id(span) for span in end_of_turns] == [
        speech_id(turn) for turn in agent_turns(audio.tree)
    ]


def test_agent_turns_are_the_speech_handles_livekit_created(audio: TracedRun) -> None:
    assert [speech_id(turn) for turn in agent_turns(audio.tree)] == [
        handle.id for handle in audio.run.speech_handles
    ]


def test_session_close_is_the_last_child_of_agent_session(audio: TracedRun) -> None:
    tree = audio.tree
    children = tree.children_of(tree.root)
    close = tree.one("session_close")
    assert children[-1] is close
    assert all(child.end_time <= close.end_time for child in children)  # type: ignore[operator]


def test_text_session_tree(text: TracedRun) -> None:
    assert text.tree.outline() == [
        "agent_session",
        "  session_start",
        "  user_turn",
        "  agent_turn",
        "    llm_node",
        "    tts_node",
        "  user_turn",
        "  agent_turn",
        *[f"    {name}" for name in TOOL_REPLY_CHILDREN],
        "  user_turn",
        "  agent_turn",
        "    llm_node",
        "    tts_node",
        "  session_close",
    ]


def test_text_user_turns_carry_the_typed_text(text: TracedRun) -> None:
    user_turns = text.tree.named("user_turn")
    assert [output_of(span) for span in user_turns] == [turn.text for turn in TURNS]
    assert {attributes(span)["lk.user.input_mode"] for span in user_turns} == {"text"}


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_every_span_of_a_session_shares_one_trace_id(
    mode: str, audio: TracedRun, text: TracedRun
) -> None:
    tree = audio.tree if mode == "audio" else text.tree
    assert len(tree.trace_ids()) == 1


def test_two_sessions_are_two_traces(audio: TracedRun, text: TracedRun) -> None:
    assert audio.tree.trace_ids().isdisjoint(text.tree.trace_ids())


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_every_child_span_lies_within_its_parent(
    mode: str, audio: TracedRun, text: TracedRun
) -> None:
    tree = audio.tree if mode == "audio" else text.tree
    assert tree.outside_parent() == []


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_every_started_span_is_ended(mode: str, audio: TracedRun, text: TracedRun) -> None:
    recorded = audio if mode == "audio" else text
    assert recorded.lifecycle.still_open == []
    assert recorded.lifecycle.started == recorded.lifecycle.ended


def test_only_livekit_otel_spans_reach_our_exporter(audio: TracedRun, text: TracedRun) -> None:
    assert audio.tree.scopes() == {"livekit_otel"}
    assert text.tree.scopes() == {"livekit_otel"}


# -- agent_session ---------------------------------------------------------------------------
def test_agent_session_carries_one_session_id_under_every_name(audio: TracedRun) -> None:
    root = attributes(audio.tree.root)
    assert root["session.id"]
    assert root["langfuse.session.id"] == root["session.id"]
    assert root["gen_ai.conversation.id"] == root["session.id"]


def test_every_span_carries_the_session_id(audio: TracedRun) -> None:
    session = attributes(audio.tree.root)["session.id"]
    assert {attributes(span).get("session.id") for span in audio.tree} == {session}


def test_agent_session_names_the_agent(audio: TracedRun) -> None:
    assert attributes(audio.tree.root)["lk.agent.name"] == ScriptedAgent().label


def test_agent_session_and_session_close_carry_the_close_reason(audio: TracedRun) -> None:
    assert attributes(audio.tree.root)["lk.session.close_reason"] == "user_initiated"
    assert attributes(audio.tree.one("session_close"))["lk.session.close_reason"] == (
        "user_initiated"
    )


def test_agent_session_totals_the_usage_livekit_reported(audio: TracedRun) -> None:
    root = attributes(audio.tree.root)
    llm = audio.run.metrics_of(LLMMetrics)
    tts = audio.run.metrics_of(TTSMetrics)
    stt = audio.run.metrics_of(STTMetrics)
    assert root["lk.usage.llm_prompt_tokens"] == sum(m.prompt_tokens for m in llm)
    assert root["lk.usage.llm_completion_tokens"] == sum(m.completion_tokens for m in llm)
    assert root["lk.usage.tts_characters_count"] == sum(m.characters_count for m in tts)
    assert root["lk.usage.stt_audio_duration"] == pytest.approx(sum(m.audio_duration for m in stt))


# -- user_turn and end_of_turn -------------------------------------------------------------
def test_user_turn_carries_the_stt_metrics_of_its_utterance(audio: TracedRun) -> None:
    stt = audio.run.metrics_of(STTMetrics)
    user_turns = user_turns_in_reply_order(audio.tree)
    assert len(stt) == len(user_turns)
    for span, metrics in zip(user_turns, stt, strict=True):
        values = attributes(span)
        assert metrics_attributes("stt", metrics).items() <= values.items()
        assert values["lk.stt.requests"] == 1


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def say_with_late_stt_usage(conv: ScriptedConversation, text: str) -> None:
    """One utterance whose STT usage is reported only after its end of turn."""
    metrics_so_far = len(conv.metrics)

    def reported(kind: type) -> bool:
        return any(isinstance(m, kind) for m in conv.metrics[metrics_so_far:])

    hold = conv.audio_output.hold_next_segment()  # the reply plays until the usage is in
    for _ in range(3):
        conv.audio_input.push_frame(silence_frame())
    await conv.vad.emit_event(VADEventType.START_OF_SPEECH, speech_duration=0.6)
    await conv.vad.emit_event(VADEventType.INFERENCE_DONE, speech_duration=0.6)
    await conv.vad.emit_event(VADEventType.END_OF_SPEECH, speech_duration=0.6, silence_duration=0.2)
    await conv.stt.emit_transcript(text, audio_duration=0.6, usage=False)
    await until(lambda: reported(EOUMetrics))
    await conv.stt.emit_usage(audio_duration=0.6)
    await until(lambda: reported(STTMetrics))
    await asyncio.wait_for(hold.captured, 5)
    conv.audio_output.release()
    handle = conv.speech_handles[-1]
    await until(handle.done)


async def test_stt_usage_reported_after_the_end_of_turn_belongs_to_that_utterance(
    tracing: Tracing,
) -> None:
    conv = ScriptedConversation()
    await conv.start()
    for text in ("hello there", "thanks that is all"):
        await say_with_late_stt_usage(conv, text)
    run = await conv.aclose()
    tree = tracing.tree()
    stt = run.metrics_of(STTMetrics)
    user_turns = user_turns_in_reply_order(tree)
    assert [output_of(span) for span in user_turns] == [
        "hello there",
        "thanks that is all",
    ]
    assert len(stt) == len(user_turns)
    for span, metrics in zip(user_turns, stt, strict=True):
        assert metrics_attributes("stt", metrics).items() <= attributes(span).items()
    assert tracing.lifecycle.still_open == []
    assert tree.outside_parent() == []


def test_user_turn_names_the_stt_model_outside_generation_attributes(audio: TracedRun) -> None:
    stt = audio.run.session.stt
    assert stt is not None
    for span in audio.tree.named("user_turn"):
        values = attributes(span)
        assert values["lk.stt.model"] == stt.model
        assert values["lk.stt.provider"] == stt.provider
        assert not [key for key in GENERATION_MARKERS if key in values]
        # for Langfuse alone, an STT generation with its model and usage (docs/cost.md)
        assert values["langfuse.observation.type"] == "generation"
        assert values["langfuse.observation.model.name"] == stt.model


def test_end_of_turn_carries_the_eou_metrics_of_its_speech(audio: TracedRun) -> None:
    eou = audio.run.metrics_of(EOUMetrics)
    spans = audio.tree.named("end_of_turn")
    assert len(spans) == len(eou)
    for span in spans:
        (metrics,) = of_speech(eou, speech_id(span))
        assert metrics_attributes("eou", metrics).items() <= attributes(span).items()


# -- agent_turn ------------------------------------------------------------------------------
def test_agent_turn_latency_breakdown_comes_from_its_speech_metrics(audio: TracedRun) -> None:
    for turn in agent_turns(audio.tree):
        speech = speech_id(turn)
        (eou,) = of_speech(audio.run.metrics_of(EOUMetrics), speech)
        first_llm = of_speech(audio.run.metrics_of(LLMMetrics), speech)[0]
        first_tts = of_speech(audio.run.metrics_of(TTSMetrics), speech)[0]
        values = attributes(turn)
        assert values["lk.turn.eou_delay"] == eou.end_of_utterance_delay
        assert values["lk.turn.llm_ttft"] == first_llm.ttft
        assert values["lk.turn.tts_ttfb"] == first_tts.ttfb


def test_agent_turn_total_latency_is_eou_delay_plus_first_ttft_plus_first_ttfb(
    audio: TracedRun,
) -> None:
    for turn in agent_turns(audio.tree):
        speech = speech_id(turn)
        (eou,) = of_speech(audio.run.metrics_of(EOUMetrics), speech)
        first_llm = of_speech(audio.run.metrics_of(LLMMetrics), speech)[0]
        first_tts = of_speech(audio.run.metrics_of(TTSMetrics), speech)[0]
        expected = eou.end_of_utterance_delay + first_llm.ttft + first_tts.ttfb
        assert attributes(turn)["lk.turn.total_latency"] == pytest.approx(expected)


def test_text_agent_turn_has_no_total_latency_without_end_of_turn(text: TracedRun) -> None:
    for turn in agent_turns(text.tree):
        values = attributes(turn)
        assert "lk.turn.eou_delay" not in values
        assert "lk.turn.total_latency" not in values
        assert values["lk.turn.llm_ttft"] > 0


@pytest.mark.parametrize("mode", ["audio", "text"])
def test_agent_turn_names_the_agent_that_replies(
    mode: str, audio: TracedRun, text: TracedRun
) -> None:
    tree = audio.tree if mode == "audio" else text.tree
    names = {attributes(turn).get("lk.agent.name") for turn in agent_turns(tree)}
    assert names == {ScriptedAgent().label}


def test_agent_turn_that_played_out_is_not_interrupted(audio: TracedRun) -> None:
    assert [attributes(turn)["lk.turn.interrupted"] for turn in agent_turns(audio.tree)] == [
        False,
        False,
        False,
    ]


# -- llm_node --------------------------------------------------------------------------------
def test_llm_nodes_carry_the_llm_metrics_of_their_speech_in_order(audio: TracedRun) -> None:
    llm = audio.run.metrics_of(LLMMetrics)
    for turn in agent_turns(audio.tree):
        nodes = audio.tree.children_of(turn, "llm_node")
        emitted = of_speech(llm, speech_id(turn))
        assert len(nodes) == len(emitted)
        for node, metrics in zip(nodes, emitted, strict=True):
            values = attributes(node)
            assert metrics_attributes("llm", metrics).items() <= values.items()
            assert values["lk.llm.requests"] == 1


def test_llm_node_reports_usage_as_gen_ai_tokens(audio: TracedRun) -> None:
    by_request = {m.request_id: m for m in audio.run.metrics_of(LLMMetrics)}
    for node in audio.tree.named("llm_node"):
        values = attributes(node)
        metrics = by_request[values["lk.llm.request_id"]]
        assert values["gen_ai.usage.input_tokens"] == metrics.prompt_tokens
        assert values["gen_ai.usage.output_tokens"] == metrics.completion_tokens


def test_llm_node_is_a_chat_generation_of_the_session_model(audio: TracedRun) -> None:
    llm = audio.run.session.llm
    assert llm is not None
    for node in audio.tree.named("llm_node"):
        values = attributes(node)
        assert values["gen_ai.operation.name"] == "chat"
        assert values["gen_ai.request.model"] == llm.model
        assert values["gen_ai.provider.name"] == llm.provider
        assert values["langfuse.observation.type"] == "generation"


def test_llm_node_completion_start_time_is_iso_with_zone_at_the_first_token(
    audio: TracedRun,
) -> None:
    for node in audio.tree.named("llm_node"):
        values = attributes(node)
        first_token = datetime.fromisoformat(values["langfuse.observation.completion_start_time"])
        assert first_token.utcoffset() is not None
        first_token_ns = first_token.timestamp() * 1e9
        assert node.start_time <= first_token_ns <= node.end_time  # type: ignore[operator]


# -- function_tool ---------------------------------------------------------------------------
def test_function_tool_is_the_tool_call_livekit_executed(audio: TracedRun) -> None:
    (call,) = [item for item in audio.run.history if item["type"] == "function_call"]
    values = attributes(audio.tree.one("function_tool"))
    assert values["gen_ai.operation.name"] == "execute_tool"
    assert values["gen_ai.tool.name"] == call["name"] == WEATHER.name
    assert values["gen_ai.tool.call.id"] == call["call_id"]
    assert values["langfuse.observation.type"] == "tool"


def test_function_tool_that_returns_has_no_error_status(audio: TracedRun) -> None:
    tool = audio.tree.one("function_tool")
    assert tool.status.status_code is StatusCode.UNSET
    assert attributes(tool)["lk.function_tool.is_error"] is False


def test_function_tool_runs_between_the_two_llm_nodes(audio: TracedRun) -> None:
    (turn,) = [t for t in agent_turns(audio.tree) if audio.tree.children_of(t, "function_tool")]
    first, second = audio.tree.children_of(turn, "llm_node")
    tool = audio.tree.one("function_tool")
    assert first.start_time <= tool.start_time  # type: ignore[operator]
    assert tool.end_time <= second.start_time  # type: ignore[operator]


# -- tts_node --------------------------------------------------------------------------------
def test_tts_node_sums_the_tts_metrics_of_its_speech(audio: TracedRun) -> None:
    tts = audio.run.metrics_of(TTSMetrics)
    for turn in agent_turns(audio.tree):
        *tool_steps, node = audio.tree.children_of(turn, "tts_node")
        tool_only_steps = len(audio.tree.children_of(turn, "llm_node")) - 1
        assert len(tool_steps) + 1 == tts_nodes_per_reply(tool_only_steps)
        for silent in tool_steps:  # a step that only called tools synthesized nothing
            assert "lk.tts.requests" not in attributes(silent)
        emitted = of_speech(tts, speech_id(turn))
        values = attributes(node)
        assert values["lk.tts.requests"] == len(emitted)
        assert values["lk.tts.characters_count"] == sum(m.characters_count for m in emitted)
        assert values["lk.tts.audio_duration"] == pytest.approx(
            sum(m.audio_duration for m in emitted)
        )
        assert values["lk.tts.ttfb"] == emitted[0].ttfb


def test_tts_node_names_the_tts_model_outside_generation_attributes(audio: TracedRun) -> None:
    tts = audio.run.session.tts
    assert tts is not None
    for node in audio.tree.named("tts_node"):
        values = attributes(node)
        assert values["lk.tts.model"] == tts.model
        assert values["lk.tts.provider"] == tts.provider
        assert not [key for key in GENERATION_MARKERS if key in values]
        # for Langfuse alone, a TTS generation with its model and usage (docs/cost.md), if
        # it synthesized something
        if not synthesized(values):
            assert values["langfuse.observation.type"] == "span"
            continue
        assert values["langfuse.observation.type"] == "generation"
        assert values["langfuse.observation.model.name"] == tts.model


# -- tracing leaves the conversation alone ---------------------------------------------------
def comparable(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History items without ids, timestamps and timing metrics."""
    dropped = {"id", "created_at", "metrics"}
    return [{k: v for k, v in item.items() if k not in dropped} for item in history]


@pytest.mark.parametrize("mode", ["audio", "text"])
async def test_traced_session_has_the_same_history_as_an_untraced_one(
    mode: str, instrument: Callable[..., Tracing]
) -> None:
    untraced = await run_scripted_session(TURNS, mode=mode)
    tracing = instrument()
    traced = await run_scripted_session(TURNS, mode=mode)
    assert len(tracing.tree()) > 0
    assert comparable(traced.history) == comparable(untraced.history)


# -- LiveKit's built-in spans stay out of our trace when a global provider exists ------------
GlobalSetter = Callable[[trace.TracerProvider], None]


async def test_no_builtin_livekit_span_reaches_our_exporter_when_the_app_set_a_global(
    instrument: Callable[..., Tracing], global_tracer_provider: GlobalSetter
) -> None:
    app_provider, _, _ = in_memory_provider()
    global_tracer_provider(app_provider)
    tracing = instrument()
    traced = await trace_session(tracing, TURNS, mode="audio")
    assert BUILTIN_SCOPE not in traced.tree.scopes()
    assert traced.tree.names["agent_turn"] == 3


async def test_no_builtin_livekit_span_reaches_our_exporter_when_ours_is_the_global(
    instrument: Callable[..., Tracing], global_tracer_provider: GlobalSetter
) -> None:
    tracing = instrument()
    global_tracer_provider(tracing.provider)
    traced = await trace_session(tracing, TURNS, mode="audio")
    assert BUILTIN_SCOPE not in traced.tree.scopes()
    assert traced.tree.names["agent_turn"] == 3


def builtin_span_outside_any_session(name: str) -> None:
    """What LiveKit's own telemetry does around a job: a span of its tracer, no session open."""
    with builtin_traces.tracer.start_as_current_span(name):
        pass


async def test_no_builtin_livekit_span_reaches_the_global_before_between_or_after_sessions(
    instrument: Callable[..., Tracing], global_tracer_provider: GlobalSetter
) -> None:
    app_provider, app_spans, _ = in_memory_provider()
    global_tracer_provider(app_provider)
    tracing = instrument()
    builtin_span_outside_any_session("job_entrypoint")
    await trace_session(tracing, TURNS[:1], mode="text")
    builtin_span_outside_any_session("between_sessions")
    await trace_session(tracing, TURNS[:1], mode="text")
    builtin_span_outside_any_session("after_sessions")
    app_provider.force_flush()
    assert [span.name for span in app_spans.get_finished_spans()] == []


async def test_builtin_telemetry_keep_lets_livekit_spans_through_a_shared_global(
    instrument: Callable[..., Tracing], global_tracer_provider: GlobalSetter
) -> None:
    tracing = instrument(builtin_telemetry="keep")
    global_tracer_provider(tracing.provider)
    traced = await trace_session(tracing, TURNS, mode="audio")
    assert BUILTIN_SCOPE in traced.tree.scopes()


async def test_no_end_of_turn_loses_part_of_livekits_delay_without_saying_so(
    tracing: Tracing,
) -> None:
    # scripted speech is dated by LiveKit from simulated durations: on some releases an
    # utterance's end-of-utterance delay reaches back before the session started, and its
    # end_of_turn is cut to its user turn, with lk.clipped_seconds saying by how much
    traced = await trace_session(tracing, ["hello there", "and again"], mode="audio")
    spans = sorted(traced.tree.named("end_of_turn"), key=lambda span: span.start_time or 0)
    delays = [m.end_of_utterance_delay for m in traced.run.metrics_of(EOUMetrics)]
    assert len(spans) == len(delays) == 2
    for span, delay in zip(spans, delays, strict=True):
        shown = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
        measured = shown + attributes(span).get("lk.clipped_seconds", 0.0)
        assert measured == pytest.approx(delay, abs=1e-3)
