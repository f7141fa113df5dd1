"""The scripted kit's own clock: known delays in, the expected perceived latency out.

These tests check the kit and LiveKit, not livekit-otel: a real `AgentSession` runs with
scripted components given known delays, on every supported livekit-agents release. The
script waited at least each setting (a sleep never ends early) and recorded how long it
actually waited (`ExpectedLatency.steps`); each expected part must hold that recorded wait.
Nothing is compared with a setting from above: on a busy machine the script itself runs
late, and LiveKit's own steps between the scripted waits (0.5 to 5 ms a part on an idle
machine) stretch without a bound the script could know. As the parts add up to the total,
a wait counted in the wrong part leaves its own part short of it, which the lower bounds
catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from livekit_otel_dev.scripted import (
    LATENCY_PARTS,
    MOMENTS,
    ExpectedLatency,
    ScriptedAgent,
    ScriptedRun,
    ScriptedStreamingTTS,
    ScriptedTTS,
    ScriptTimeline,
    Stamp,
    TimedReply,
    ToolCall,
    UserTurn,
    expected_latencies,
    paused_gc,
    run_scripted_session,
)

TOLERANCE = 0.020
"""Between two stamps a few lines of code apart (one moment seen by two scripted parts):
microseconds; 20 ms allows the process to be descheduled once in between on a busy machine."""
CLOCK = 0.001
"""A scripted sleep never ends early; its stamps are `time.time()`, which may read up to a
millisecond behind the event loop's monotonic clock."""

SILENCE = 0.10
ENDPOINTING = 0.05
HOOK = 0.03
TTFT = 0.04
TTFB = 0.06
PLAYOUT = 0.02
TOOL = 0.10
TOOL_TTFT = 0.05

WEATHER = ToolCall("lookup_weather", {"location": "Oslo"})


@pytest.fixture(autouse=True)
def no_gc_pause() -> Iterator[None]:
    """A full garbage collection (100-200 ms on the suite's heap) would land in some part."""
    with paused_gc():
        yield


async def timed_run(
    turns: list[UserTurn],
    *,
    agent: ScriptedAgent | None = None,
    tts: ScriptedTTS | None = None,
    endpointing_delay: float | None = ENDPOINTING,
    llm_options: dict[str, Any] | None = None,
    **options: Any,
) -> ScriptedRun:
    """An audio session with real-time silence, stamped into a fresh timeline."""
    return await run_scripted_session(
        turns,
        agent=agent if agent is not None else ScriptedAgent(),
        tts=tts if tts is not None else ScriptedTTS(first_byte_delay=TTFB),
        timeline=ScriptTimeline(),
        real_silence=True,
        endpointing_delay=endpointing_delay,
        llm_options={"ttft": TTFT, **(llm_options or {})},
        **options,
    )


def the_reply(run: ScriptedRun, turn: int = 0) -> ExpectedLatency:
    (reply,) = [r for r in run.expected_latencies() if r.turn == turn]
    return reply


def assert_waited(actual: float, setting: float, recorded: float, what: str) -> None:
    """The script waited at least as set, and the part holds what it recorded waiting."""
    assert recorded >= setting - CLOCK, f"{what}: the script waited {recorded:.4f}s, set {setting}s"
    assert actual >= recorded - CLOCK, f"{what}: {actual:.4f}s, the script waited {recorded:.4f}s"


def assert_adds_up(reply: ExpectedLatency) -> None:
    parts = reply.parts
    assert list(parts) == list(LATENCY_PARTS)
    assert all(value >= 0 for value in parts.values()), parts
    assert abs(sum(parts.values()) - reply.perceived_latency) < 1e-9
    assert reply.perceived_latency == reply.first_frame_at - reply.speech_ended_at


def assert_parts(reply: ExpectedLatency, **settings: float) -> None:
    """Each named part holds the script's recorded wait for it, itself at least as set."""
    assert_adds_up(reply)
    for name, setting in settings.items():
        assert_waited(getattr(reply, name), setting, reply.steps[name], name)


def stamps(run: ScriptedRun, name: str, speech_id: str | None = None) -> list[Stamp]:
    assert run.timeline is not None
    return [s for s in run.timeline.of(name) if speech_id is None or s.speech_id == speech_id]


# -- the plain turn: each setting shows up as its part -----------------------------------------
async def test_a_plain_turn_has_each_setting_as_its_part() -> None:
    run = await timed_run(
        [UserTurn("hello there", silence_duration=SILENCE)],
        agent=ScriptedAgent(hook_delay=HOOK, playout_delay=PLAYOUT),
    )
    reply = the_reply(run)
    # the endpointing delay (counted from the end of speech) ends before the silence does,
    # so the turn is committed at END_OF_SPEECH
    assert_parts(
        reply,
        end_of_turn=max(SILENCE, ENDPOINTING),
        on_user_turn_completed=HOOK,
        llm=TTFT,
        tools=0.0,
        tts=TTFB,
        playout=PLAYOUT,
    )
    assert not reply.interrupted
    assert reply.played_duration == pytest.approx(run.audio_output.segments[0].played)


async def test_the_playout_delay_sits_right_before_the_first_frame_handed_to_the_output() -> None:
    run = await timed_run(
        [UserTurn("hello there", silence_duration=0.05)],
        agent=ScriptedAgent(playout_delay=PLAYOUT),
    )
    reply = the_reply(run)
    (end,) = stamps(run, "playout.end", reply.speech_id)
    (start,) = stamps(run, "playout.start", reply.speech_id)
    (node_frame,) = stamps(run, "tts_node.first_frame", reply.speech_id)
    assert 0 <= reply.first_frame_at - end.time < TOLERANCE  # awaited just before forwarding
    assert 0 <= start.time - node_frame.time < TOLERANCE  # it starts at the node's first frame
    assert end.time - start.time >= PLAYOUT - CLOCK
    assert reply.steps["playout"] == end.time - start.time


async def test_an_endpointing_delay_longer_than_the_silence_dates_the_commit() -> None:
    run = await timed_run([UserTurn("hello there", silence_duration=0.05)], endpointing_delay=0.15)
    assert_parts(the_reply(run), end_of_turn=0.15, on_user_turn_completed=0.0, llm=TTFT)


async def test_a_late_transcript_delays_the_commit() -> None:
    turn = UserTurn("hello there", silence_duration=0.05, transcript_delay=0.08)
    run = await timed_run([turn], endpointing_delay=None)
    (final,) = stamps(run, "stt.final")
    reply = the_reply(run)
    assert_parts(reply, end_of_turn=0.13, llm=TTFT, tts=TTFB)
    assert 0 <= reply.committed_at - final.time < TOLERANCE


# -- tools, long answers, streaming TTS --------------------------------------------------------
async def test_a_tool_turn_counts_both_llm_steps_as_llm_and_the_tool_as_tools() -> None:
    run = await timed_run(
        [UserTurn("weather in Oslo?", silence_duration=SILENCE, reply=WEATHER)],
        agent=ScriptedAgent(
            hook_delay=HOOK, playout_delay=PLAYOUT, tool_delays={"lookup_weather": TOOL}
        ),
        llm_options={"tool_ttft": TOOL_TTFT},
    )
    reply = the_reply(run)
    assert_parts(
        reply,
        end_of_turn=SILENCE,
        on_user_turn_completed=HOOK,
        tools=TOOL,
        tts=TTFB,
        playout=PLAYOUT,
    )
    # two LLM steps, each with LiveKit's own steps around it (start the step, hand the
    # tool call over, start the next step): typically 7 to 15 ms in all
    assert_parts(reply, llm=TOOL_TTFT + TTFT)
    requests = stamps(run, "llm.request", reply.speech_id)
    assert [s.data["kind"] for s in requests] == ["tools", "text"]  # one speech, two steps
    (interval,) = reply.tool_intervals
    assert requests[0].time < interval[0] < interval[1] < requests[1].time


async def test_a_reply_timed_on_its_own_overrides_the_llm_settings() -> None:
    timed = TimedReply(WEATHER, ttft=0.08)
    run = await timed_run(
        [UserTurn("weather in Oslo?", silence_duration=0.05, reply=timed)],
        agent=ScriptedAgent(tool_delays={"lookup_weather": 0.05}),
    )
    reply = the_reply(run)
    assert_parts(reply, tools=0.05, tts=TTFB)
    assert_parts(reply, llm=0.08 + TTFT)


LONG_PIECES = ["Well, ", "let me ", "think about ", "that for ", "a moment. ", "Here it is."]


async def test_a_slow_first_sentence_is_llm_time_not_tts_time() -> None:
    delay = 0.04
    reply_text = TimedReply("".join(LONG_PIECES), chunks=LONG_PIECES, chunk_delay=delay)
    run = await timed_run([UserTurn("a question", silence_duration=0.05, reply=reply_text)])
    reply = the_reply(run)
    (first,) = stamps(run, "tts.synthesize", reply.speech_id)[:1]
    assert first.data["text"] == "Well, let me think about that for a moment."
    # LiveKit's sentence tokenizer lets the first sentence go once the reply ends here:
    # six LLM sleeps in a row, each a little late
    assert_parts(reply, tts=TTFB, playout=0.0)
    slowest = TTFT + delay * (len(LONG_PIECES) - 1)
    (request,) = stamps(run, "llm.request", reply.speech_id)
    (ended,) = stamps(run, "llm.end", reply.speech_id)
    assert_waited(reply.llm, slowest, ended.time - request.time, "llm")


async def test_with_a_streaming_tts_the_first_llm_text_goes_to_synthesis_at_once() -> None:
    run = await timed_run(
        [UserTurn("hello there", silence_duration=0.05)],
        tts=ScriptedStreamingTTS(first_byte_delay=TTFB),
        llm_options={"chunk_delay": 0.03},
    )
    reply = the_reply(run)
    assert stamps(run, "tts.synthesize") == []
    (pushed,) = stamps(run, "tts.push_text", reply.speech_id)
    (first_chunk,) = stamps(run, "llm.first_chunk", reply.speech_id)
    assert 0 <= pushed.time - first_chunk.time < TOLERANCE
    assert_parts(reply, llm=TTFT, tts=TTFB, playout=0.0)


# -- interruption, preemptive generation, handoff ----------------------------------------------
async def test_an_interrupted_reply_played_what_the_output_reported() -> None:
    story = "Once upon a time there was a scripted kit. " * 6
    run = await timed_run(
        [
            UserTurn("tell me a story", silence_duration=0.05, reply=story, interrupt_after=0.3),
            UserTurn("stop, thanks", silence_duration=0.05),
        ],
        playback_speed=1.0,
    )
    reply = the_reply(run, turn=0)
    assert reply.interrupted
    (segment,) = [s for s in run.audio_output.segments if s.speech_id == reply.speech_id]
    assert segment.interrupted
    assert segment.first_frame_at == reply.first_frame_at
    assert reply.played_duration == pytest.approx(segment.played)
    # its playhead started once all its audio was captured; the barge-in came 0.3 s later
    assert reply.played_duration >= 0.3 - CLOCK
    assert segment.played < segment.pushed
    assert_parts(reply, llm=TTFT, tts=TTFB)
    assert not the_reply(run, turn=1).interrupted


async def test_preemptive_work_before_the_commit_does_not_count() -> None:
    run = await timed_run(
        [UserTurn("hello there", silence_duration=0.05)],
        agent=ScriptedAgent(hook_delay=HOOK),
        endpointing_delay=0.2,
        preemptive_generation=True,
    )
    reply = the_reply(run)
    (request,) = stamps(run, "llm.request")
    assert request.speech_id == reply.speech_id  # the preemptive attempt was kept
    assert request.time < reply.committed_at
    assert_parts(reply, end_of_turn=0.2, on_user_turn_completed=HOOK)
    # the LLM answered during the endpointing wait: at most LiveKit's own steps remain
    # (1.3.6 to 1.5 also synthesize before the commit; later releases once scheduled)
    assert reply.steps["llm"] == 0.0
    assert_parts(reply, llm=0.0, tts=0.0)


async def test_a_discarded_preemptive_attempt_leaves_the_full_wait_to_the_new_reply() -> None:
    run = await timed_run(
        [UserTurn("hello there", silence_duration=0.05)],
        agent=ScriptedAgent(hook_delay=HOOK, edit_chat_ctx=True),
        endpointing_delay=0.2,
        preemptive_generation=True,
    )
    reply = the_reply(run)
    discarded, kept = stamps(run, "llm.request")
    assert discarded.speech_id != reply.speech_id
    assert kept.speech_id == reply.speech_id
    assert discarded.time < reply.committed_at < kept.time
    assert stamps(run, "output.first_frame", discarded.speech_id) == []
    assert_parts(reply, end_of_turn=0.2, on_user_turn_completed=HOOK, llm=TTFT, tts=TTFB)


async def test_a_turn_after_a_handoff_is_timed_on_the_new_agent() -> None:
    second = ScriptedAgent(instructions="You are the second agent.", hook_delay=0.01)
    first = ScriptedAgent(hook_delay=HOOK, handoff_to=second)
    run = await timed_run(
        [
            UserTurn("transfer me", silence_duration=0.05, reply=ToolCall("transfer_to_agent")),
            UserTurn("hello second agent", silence_duration=0.05),
        ],
        agent=first,
    )
    assert second.timeline is run.timeline  # handed on by the handoff tool
    assert [r.turn for r in run.expected_latencies()] == [1]  # the handoff turn said nothing
    assert_parts(
        the_reply(run, turn=1), end_of_turn=0.05, on_user_turn_completed=0.01, llm=TTFT, tts=TTFB
    )


# -- defaults stay as they were ----------------------------------------------------------------
async def test_without_a_timeline_nothing_is_stamped_or_expected() -> None:
    run = await run_scripted_session([UserTurn("hello there")])
    assert run.timeline is None
    assert run.expected_latencies() == []
    assert [s.speech_id for s in run.audio_output.segments] == [run.speech_handles[0].id]


async def test_simulated_silence_has_no_true_end_of_speech_so_no_expectation() -> None:
    timeline = ScriptTimeline()
    run = await run_scripted_session([UserTurn("hello there")], timeline=timeline)
    assert timeline.of("user.speech_end") == []
    assert timeline.of("livekit.eou") and timeline.of("output.first_frame")
    assert run.expected_latencies() == []


# -- the rule itself, on a hand-made timeline --------------------------------------------------
def test_the_rule_clamps_preemptive_work_and_counts_tool_time_once() -> None:
    tl = ScriptTimeline()

    def at(stamp: str, when: float, speech: str | None = "s1", /, **data: Any) -> None:
        tl.stamp(stamp, at=100.0 + when, speech_id=speech, **data)

    at("user.speech_end", 0.0, None, turn=0, text="hi")
    at("llm.request", 0.05)  # preemptive: before the commit
    at("hook.start", 0.20, None)
    at("hook.end", 0.23, None)
    at("livekit.eou", 0.231, turn=0, on_user_turn_completed_delay=0.03)
    at("tool.start", 0.21, name="a", run=1)  # starts before the hook ends: clipped
    at("tool.end", 0.30, name="a", run=1)
    at("tool.start", 0.25, name="b", run=2)  # overlaps the first: counted once
    at("tool.end", 0.35, name="b", run=2)
    at("tts.synthesize", 0.40, text="Hello.")
    at("tts.first_audio", 0.46)
    at("output.first_frame", 0.48)
    at("output.segment_end", 0.9, pushed=1.0, played=0.4, interrupted=True)

    (reply,) = expected_latencies(tl)
    assert reply.speech_id == "s1"
    assert reply.end_of_turn == pytest.approx(0.20)
    assert reply.on_user_turn_completed == pytest.approx(0.03)
    assert reply.tools == pytest.approx(0.35 - 0.23)
    assert reply.llm == pytest.approx(0.40 - 0.23 - (0.35 - 0.23))
    assert reply.tts == pytest.approx(0.06)
    assert reply.playout == pytest.approx(0.02)
    assert reply.perceived_latency == pytest.approx(0.48)
    assert (reply.played_duration, reply.interrupted) == (0.4, True)
    assert_adds_up(reply)


def test_the_rule_takes_the_hook_from_livekit_when_the_agent_stamps_none() -> None:
    tl = ScriptTimeline()
    tl.stamp("user.speech_end", at=10.0, speech_id=None, turn=0)
    tl.stamp("livekit.eou", at=10.3, speech_id="s1", turn=0, on_user_turn_completed_delay=0.1)
    tl.stamp("tts.first_audio", at=10.5, speech_id="s1")  # no text stamp: a custom TTS node
    tl.stamp("output.first_frame", at=10.5, speech_id="s1")
    (reply,) = expected_latencies(tl)
    assert reply.end_of_turn == pytest.approx(0.2)
    assert reply.on_user_turn_completed == pytest.approx(0.1)
    assert (reply.llm, reply.tts, reply.playout) == (pytest.approx(0.2), 0.0, 0.0)


def test_the_rule_gives_each_moment_the_window_its_stamps_allow() -> None:
    tl = ScriptTimeline()

    def at(stamp: str, when: float, speech: str | None = "s1", /, **data: Any) -> None:
        tl.stamp(stamp, at=100.0 + when, speech_id=speech, **data)

    at("user.speech_end", 0.0, None, turn=0)
    at("vad.end_of_speech", 0.10, None)
    at("livekit.speech_end_heard", 0.13, None, turn=0)  # LiveKit handled it 30 ms late
    at("stt.final", 0.10, None, turn=0)
    at("hook.start", 0.15, None)
    at("hook.end", 0.18, None)
    at("livekit.eou", 0.19, turn=0, end_of_utterance_delay=0.12, on_user_turn_completed_delay=0.03)
    at("llm.request", 0.20, request_id="r1", kind="text")
    at("llm.first_chunk", 0.24, request_id="r1", kind="text")
    at("tts.synthesize", 0.25, text="Hi.")
    at("tts.first_audio", 0.31)
    at("tts_node.first_frame", 0.32)
    at("playout.start", 0.32)
    at("playout.end", 0.34)
    at("output.first_frame", 0.345)

    (reply,) = expected_latencies(tl)
    windows = {name: (w.earliest - 100.0, w.latest - 100.0) for name, w in reply.windows.items()}
    assert list(windows) == list(MOMENTS)
    assert windows == {
        "end_of_speech": pytest.approx((0.0, 0.03)),
        "commit": pytest.approx((0.10, 0.15)),
        "hook_returned": pytest.approx((0.18, 0.19)),
        "text_sent": pytest.approx((0.25, 0.25)),
        "first_audio": pytest.approx((0.31, 0.32)),
        "first_frame": pytest.approx((0.345, 0.345)),
    }
    assert reply.steps == {
        "end_of_turn": pytest.approx(0.12),  # LiveKit's endpointing outlasted the silence
        "on_user_turn_completed": pytest.approx(0.03),
        "llm": pytest.approx(0.04),
        "tools": 0.0,
        "tts": pytest.approx(0.06),
        "playout": pytest.approx(0.02),
    }
