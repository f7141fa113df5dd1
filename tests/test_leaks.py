"""A 1000-turn session leaves nothing behind: every span ended, no per-session state, flat memory.

The session runs in text mode (``session.run(user_input=...)``) with zero model delays;
audio mode costs about twice the CPU per turn and adds nothing the leak checks need.
It mixes plain replies, tool calls, failing tools, replies interrupted while playing and
replies cancelled during LLM inference, and it closes in the middle of a reply. Like a
long-running agent, the agent trims its chat context now and then (LiveKit's own cost
per turn would otherwise grow with the conversation). The session runs once per module;
each test checks one outcome of it.

Memory is checked two ways. Live objects: after turn 200 and after turn 1000 (exporter
cleared, garbage collected) the SDK spans and livekit-otel's per-turn objects still alive
are counted; they must not grow. Bytes: tracemalloc makes LiveKit about 4x slower, so it
traces only the last ``TRACED_TURNS`` turns (set it to 800 to trace from turn 200); what
livekit-otel and the SDK allocated during them and still hold at the end must stay
within ``MAX_TRACED_GROWTH``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit_otel_dev.scripted import ScriptedConversation, ScriptedTTS, ToolCall, UserTurn
from opentelemetry.sdk.trace import ReadableSpan

from livekit_otel.recording import replies as replies_module
from livekit_otel.recording import user_turns as user_turns_module
from livekit_otel.recording.recorder import RECORDER_ATTRIBUTE, SessionRecorder
from support.tracing import SpanLifecycle, Tracing, instrumented

TURNS = 1000
CENSUS_TURN = 200
TRACED_TURNS = 100
# Blocks allocated in livekit-otel or OpenTelemetry SDK code during the traced turns and
# still held after them. One leaked span per turn (about 4 KB with its attributes) would
# hold about 400 KB after 100 turns, one leaked recorder entry per turn tens of KB. What
# legitimately stays is bounded and does not grow with turns: CPython's free lists keep
# up to 80 freed dicts (and their key tables) charged to the line that last allocated
# them, about 30 KB here.
MAX_TRACED_GROWTH = 64 * 1024
TRIM_EVERY = 25
KEEP_ITEMS = 12
_TRACED_CODE = (
    tracemalloc.Filter(True, "*/livekit_otel/*"),
    tracemalloc.Filter(True, "*/opentelemetry/sdk/*"),
    tracemalloc.Filter(True, "*/opentelemetry/attributes/*"),
)
_NOT_TRACED_CODE = (tracemalloc.Filter(False, "*/livekit_otel/scripted/*"),)
_PER_TURN_TYPES = (
    replies_module.AgentTurn,
    replies_module.Node,
    user_turns_module.UserTurn,
)


@dataclass
class LongSession:
    """What the long session left behind."""

    lifecycle: SpanLifecycle
    recorder: SessionRecorder
    census_early: Counter[str]
    census_late: Counter[str]
    traced_growth: int
    traced_top: list[str]
    span_names: set[str]
    interrupted_turns: int
    cancelled_nodes: int
    failed_tools: int


def turn_kind(index: int) -> str:
    """The mix of turns: mostly plain and tool replies, with failures and interruptions."""
    kinds = ("plain", "tool", "plain", "tool_error", "plain", "interrupt", "tool", "cancel")
    return kinds[index % len(kinds)]


async def cancel_during_llm(conversation: ScriptedConversation, text: str) -> None:
    """Interrupt a reply while its LLM inference still waits for the first token."""
    llm: Any = conversation.llm
    llm.ttft = 0.02
    try:
        result = conversation.session.run(user_input=text)
        await asyncio.sleep(0.002)
        conversation.session.interrupt()
        await result
    finally:
        llm.ttft = 0.0


async def play_turn(conversation: ScriptedConversation, index: int) -> None:
    """One user turn of the mix."""
    kind = turn_kind(index)
    text = f"turn {index} {kind}"
    if kind == "tool":
        weather = ToolCall("lookup_weather", {"location": "Paris"})
        await conversation.user_types(UserTurn(text, reply=weather))
    elif kind == "tool_error":
        booking = ToolCall("book_table", {"restaurant": "X"})
        await conversation.user_types(UserTurn(text, reply=booking))
    elif kind == "interrupt":
        long_reply = "a long answer " * 20
        await conversation.user_types(UserTurn(text, reply=long_reply, interrupt_after=0.001))
    elif kind == "cancel":
        await cancel_during_llm(conversation, text)
    else:
        await conversation.user_types(UserTurn(text))


async def trim_chat_context(conversation: ScriptedConversation) -> None:
    """Keep the agent's chat context short, as a long-running agent does."""
    context = conversation.agent.chat_ctx.copy()
    context.truncate(max_items=KEEP_ITEMS)
    await conversation.agent.update_chat_ctx(context)


def forget_recorded_events(conversation: ScriptedConversation) -> None:
    """Empty the list in which LiveKit keeps every session event for its session report.

    That list grows by a dozen events a turn, LiveKit's own growth. CPython gives a new
    small dict the key table of a freed one from its free list, with no new allocation, so
    tracemalloc charges those events' dicts to the livekit-otel line whose temporary dict
    first allocated the table: measured with them kept, 34 KB after 50 traced turns, 62 KB
    after 100, 139 KB after 300, all 120-byte key tables of the dicts of
    ``AgentStateChangedEvent``, ``MetricsCollectedEvent`` and other events in that list.
    """
    conversation.session._recorded_events.clear()


def census() -> Counter[str]:
    """Live SDK spans and livekit-otel per-turn objects, by class name, after a collection."""
    gc.collect()
    counts: Counter[str] = Counter()
    for thing in gc.get_objects():
        if isinstance(thing, (ReadableSpan, *_PER_TURN_TYPES)):
            counts[type(thing).__name__] += 1
    return counts


def traced_bytes(snapshot: tracemalloc.Snapshot) -> tuple[int, list[str]]:
    """Bytes held by blocks allocated in livekit-otel or SDK code, and the top lines."""
    ours = snapshot.filter_traces(_TRACED_CODE).filter_traces(_NOT_TRACED_CODE)
    stats = ours.statistics("lineno")
    return sum(stat.size for stat in stats), [str(stat) for stat in stats[:5]]


class SpanStats:
    """Reads the exported spans in batches and forgets them."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing
        self.names: set[str] = set()
        self.interrupted = 0
        self.cancelled = 0
        self.failed_tools = 0

    def drain(self) -> None:
        for span in self.tracing.exporter.get_finished_spans():
            values = span.attributes or {}
            self.names.add(span.name)
            if span.name == "agent_turn" and values.get("lk.turn.interrupted"):
                self.interrupted += 1
            if values.get("lk.cancelled"):
                self.cancelled += 1
            if span.name == "function_tool" and span.status.status_code.name == "ERROR":
                self.failed_tools += 1
        self.tracing.clear()


async def run_long_session(tracing: Tracing) -> LongSession:
    conversation = ScriptedConversation(
        tts=ScriptedTTS(first_byte_delay=0.0), playback_speed=100_000.0
    )
    llm: Any = conversation.llm
    llm.ttft, llm.chunk_delay = 0.0, 0.0
    await conversation.start()
    recorder = getattr(conversation.session, RECORDER_ATTRIBUTE)
    stats = SpanStats(tracing)
    early: Counter[str] = Counter()
    start_tracing_after = TURNS - TRACED_TURNS
    try:
        for index in range(TURNS):
            await play_turn(conversation, index)
            done = index + 1
            if done % TRIM_EVERY == 0:
                stats.drain()
                await trim_chat_context(conversation)
                forget_recorded_events(conversation)
            if done == CENSUS_TURN:
                early = census()
            if done == start_tracing_after:
                gc.collect()
                tracemalloc.start(1)
                before, _ = traced_bytes(tracemalloc.take_snapshot())
        stats.drain()
        late = census()
        after, top = traced_bytes(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    # close in the middle of a reply: the open turn and its nodes must still end
    pending: Any = conversation.session.run(user_input="closing while you answer")
    await asyncio.sleep(0)
    await conversation.session.aclose()
    await asyncio.gather(asyncio.wait_for(_await(pending), 5.0), return_exceptions=True)
    stats.drain()
    return LongSession(
        lifecycle=tracing.lifecycle,
        recorder=recorder,
        census_early=early,
        census_late=late,
        traced_growth=after - before,
        traced_top=top,
        span_names=stats.names,
        interrupted_turns=stats.interrupted,
        cancelled_nodes=stats.cancelled,
        failed_tools=stats.failed_tools,
    )


async def _await(awaitable: Any) -> Any:
    return await awaitable


@pytest.fixture(scope="module")
def long_session() -> Iterator[LongSession]:
    """Run the 1000-turn traced session once for the module's tests."""
    noisy = logging.getLogger("livekit.agents")
    level = noisy.level
    noisy.setLevel(logging.CRITICAL)  # every failing tool logs a traceback
    try:
        with instrumented() as tracing:
            yield asyncio.run(run_long_session(tracing))
    finally:
        noisy.setLevel(level)


def test_long_session_had_interruptions_cancellations_and_tool_errors(
    long_session: LongSession,
) -> None:
    assert long_session.interrupted_turns >= TURNS // 8
    assert long_session.cancelled_nodes >= TURNS // 8
    assert long_session.failed_tools >= TURNS // 8
    expected = {"agent_turn", "llm_node", "function_tool", "tts_node", "user_turn"}
    assert expected <= long_session.span_names


def test_every_started_span_is_ended(long_session: LongSession) -> None:
    assert long_session.lifecycle.started > TURNS * 3
    assert long_session.lifecycle.still_open == []
    assert long_session.lifecycle.ended == long_session.lifecycle.started


def test_recorder_is_closed_after_the_session(long_session: LongSession) -> None:
    assert long_session.recorder.closed


def test_recorder_holds_no_turns_after_close(long_session: LongSession) -> None:
    recorder = long_session.recorder
    assert recorder.turns == {}
    assert recorder.user_turns.unwritten() == 0


def test_live_spans_do_not_accumulate_over_turns(long_session: LongSession) -> None:
    early = sum(n for name, n in long_session.census_early.items() if name.endswith("Span"))
    late = sum(n for name, n in long_session.census_late.items() if name.endswith("Span"))
    assert late <= early + 2, (
        f"{late} spans alive after turn {TURNS}, {early} after turn {CENSUS_TURN}: "
        f"{dict(long_session.census_late)}"
    )


def test_per_turn_objects_do_not_accumulate_over_turns(long_session: LongSession) -> None:
    for kind in _PER_TURN_TYPES:
        early = long_session.census_early[kind.__name__]
        late = long_session.census_late[kind.__name__]
        assert late <= early + 2, (
            f"{late} {kind.__name__} objects alive after turn {TURNS}, {early} after "
            f"turn {CENSUS_TURN}"
        )


def test_memory_held_by_livekit_otel_and_the_sdk_stays_flat(long_session: LongSession) -> None:
    assert long_session.traced_growth <= MAX_TRACED_GROWTH, (
        f"livekit-otel and SDK code hold {long_session.traced_growth} more bytes after "
        f"the last {TRACED_TURNS} turns; top lines: {long_session.traced_top}"
    )


def test_spoken_utterances_are_freed_while_the_session_goes_on() -> None:
    """LiveKit keeps each finished reply task, and the context it started in, for the
    whole session; the utterance being committed when the task started (its STT metrics,
    its audio clip) must not live on in that context once its span is written."""
    spoken_turns = 8

    async def session() -> Counter[str]:
        conversation = ScriptedConversation()
        await conversation.start()
        for index in range(spoken_turns):
            await conversation.user_says(UserTurn(f"spoken turn {index}"))
        alive = census()
        await conversation.aclose()
        return alive

    with instrumented(audio="turns"):
        alive = asyncio.run(session())
    assert alive[user_turns_module.UserTurn.__name__] <= 1, (
        f"{alive[user_turns_module.UserTurn.__name__]} utterances alive after "
        f"{spoken_turns} spoken turns"
    )
