"""The trace stays whole when a session leaves the happy path.

Interruptions, a tool that raises, a user's own ``llm_node`` / ``tts_node``, preemptive
generation, an agent handoff and a session closed while the agent speaks: in each, every
span that was started is ended, inside its parent, and the tree keeps its shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable

from livekit import rtc
from livekit.agents import Agent, FlushSentinel, ModelSettings, function_tool, llm
from livekit.agents.metrics import EOUMetrics
from livekit.agents.vad import VADEventType
from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedConversation,
    ScriptedLLM,
    ScriptedRun,
    ToolCall,
    UserTurn,
)
from livekit_otel_dev.scripted.media import silence_frame
from opentelemetry.trace import StatusCode

from support.shapes import SPEAKING_STEP, discarded_attempt, tool_only_step, tool_reply
from support.tracing import (
    SpanLifecycle,
    SpanTree,
    TracedRun,
    Tracing,
    attributes,
    output_of,
    trace_session,
)

LONG_REPLY = "Once upon a time there was a fox who lived by the river. " * 12


def assert_whole(tree: SpanTree, lifecycle: SpanLifecycle) -> None:
    """Every span ended, one trace, nobody orphaned, every child inside its parent."""
    assert lifecycle.still_open == []
    assert lifecycle.started == lifecycle.ended
    assert len(tree.trace_ids()) == 1
    assert tree.orphans() == []
    assert tree.outside_parent() == []


# -- interruption ----------------------------------------------------------------------------
async def interrupted_session(tracing: Tracing) -> TracedRun:
    return await trace_session(
        tracing,
        [
            UserTurn("tell me a story", reply=LONG_REPLY, interrupt_after=0.01),
            UserTurn("stop, what time is it"),
        ],
        mode="audio",
    )


async def test_interrupted_reply_marks_its_agent_turn_interrupted(tracing: Tracing) -> None:
    traced = await interrupted_session(tracing)
    story, answer = traced.tree.named("agent_turn")
    assert traced.run.speech_handles[0].interrupted
    assert attributes(story)["lk.turn.interrupted"] is True
    assert attributes(answer)["lk.turn.interrupted"] is False


async def test_interrupted_agent_turn_ends_its_children_inside_it(tracing: Tracing) -> None:
    traced = await interrupted_session(tracing)
    story = traced.tree.named("agent_turn")[0]
    assert traced.tree.child_names(story) == ["llm_node", "tts_node"]
    assert_whole(traced.tree, traced.lifecycle)


# -- a tool that raises ------------------------------------------------------------------------
BOOKING = ToolCall("book_table", {"restaurant": "Chez Panisse", "people": 4})


async def test_tool_that_raises_gives_function_tool_error_status(tracing: Tracing) -> None:
    traced = await trace_session(tracing, [UserTurn("book a table", reply=BOOKING)], mode="text")
    tool = traced.tree.one("function_tool")
    assert tool.status.status_code is StatusCode.ERROR
    assert attributes(tool)["lk.function_tool.is_error"] is True


async def test_tool_that_raises_records_the_exception_event(tracing: Tracing) -> None:
    traced = await trace_session(tracing, [UserTurn("book a table", reply=BOOKING)], mode="text")
    (event,) = [e for e in traced.tree.one("function_tool").events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert "no table for 4 available at Chez Panisse" in str(event.attributes["exception.message"])


async def test_agent_turn_still_ends_after_its_tool_raised(tracing: Tracing) -> None:
    traced = await trace_session(tracing, [UserTurn("book a table", reply=BOOKING)], mode="text")
    turn = traced.tree.one("agent_turn")
    assert traced.tree.child_names(turn) == tool_reply()
    assert turn.status.status_code is StatusCode.UNSET
    assert_whole(traced.tree, traced.lifecycle)


# -- a user's own llm_node / tts_node ----------------------------------------------------------
class OwnNodesAgent(ScriptedAgent):
    """Overrides both nodes and delegates to LiveKit's defaults, as the docs suggest."""

    def __init__(self) -> None:
        super().__init__()
        self.llm_calls = 0
        self.tts_calls = 0

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str | FlushSentinel]:
        self.llm_calls += 1
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterable[rtc.AudioFrame]:
        self.tts_calls += 1
        async for frame in Agent.default.tts_node(self, text, model_settings):
            yield frame


WEATHER = ToolCall("lookup_weather", {"location": "Paris"})


async def test_overridden_llm_node_still_gets_llm_node_spans(tracing: Tracing) -> None:
    agent = OwnNodesAgent()
    traced = await trace_session(
        tracing, [UserTurn("weather in Paris?", reply=WEATHER)], agent=agent, mode="text"
    )
    assert agent.llm_calls == 2
    turn = traced.tree.one("agent_turn")
    assert len(traced.tree.children_of(turn, "llm_node")) == 2


async def test_overridden_tts_node_still_gets_a_tts_node_span(tracing: Tracing) -> None:
    agent = OwnNodesAgent()
    traced = await trace_session(tracing, [UserTurn("hello there")], agent=agent, mode="audio")
    assert agent.tts_calls == 1
    (node,) = traced.tree.children_of(traced.tree.one("agent_turn"), "tts_node")
    assert attributes(node)["lk.tts.requests"] >= 1
    assert_whole(traced.tree, traced.lifecycle)


# -- preemptive generation -----------------------------------------------------------------
async def test_preemptive_generation_keeps_the_tree_and_ends_every_span(
    tracing: Tracing,
) -> None:
    traced = await trace_session(
        tracing,
        [UserTurn("hello there"), UserTurn("weather in Paris?", reply=WEATHER)],
        mode="audio",
        preemptive_generation=True,
    )
    replies = [
        turn
        for turn in traced.tree.named("agent_turn")
        if not attributes(turn).get("lk.turn.discarded")
    ]
    assert [traced.tree.child_names(turn) for turn in replies] == [SPEAKING_STEP, tool_reply()]
    assert len(traced.tree.named("user_turn")) == 2
    assert_whole(traced.tree, traced.lifecycle)


async def say_in_two_transcripts(conv: ScriptedConversation, first: str, second: str) -> None:
    """One utterance whose transcript grows after a preemptive reply to its first part."""
    for _ in range(3):
        conv.audio_input.push_frame(silence_frame())
    await conv.vad.emit_event(VADEventType.START_OF_SPEECH, speech_duration=0.6)
    await conv.vad.emit_event(VADEventType.INFERENCE_DONE, speech_duration=0.6)
    await conv.stt.emit_transcript(first, audio_duration=0.3)
    await until(lambda: len(conv.speech_handles) == 1)
    await conv.stt.emit_transcript(second, audio_duration=0.3)
    await until(lambda: len(conv.speech_handles) == 2)
    await conv.vad.emit_event(VADEventType.END_OF_SPEECH, speech_duration=0.6, silence_duration=0.2)
    await until(lambda: any(isinstance(m, EOUMetrics) for m in conv.metrics))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def superseded_preemptive_session(tracing: Tracing) -> tuple[SpanTree, ScriptedRun]:
    conv = ScriptedConversation(preemptive_generation=True)
    await conv.start()
    await say_in_two_transcripts(conv, "what is the", "weather in Paris")
    run = await conv.aclose()
    return tracing.tree(), run


async def test_superseded_preemptive_reply_is_a_discarded_agent_turn(tracing: Tracing) -> None:
    tree, run = await superseded_preemptive_session(tracing)
    discarded, reply = tree.named("agent_turn")
    assert attributes(discarded)["lk.turn.discarded"] is True
    assert attributes(discarded)["lk.speech_id"] == run.speech_handles[0].id
    assert tree.child_names(discarded) == discarded_attempt()
    assert "lk.turn.discarded" not in attributes(reply)
    assert tree.child_names(reply) == ["llm_node", "tts_node"]


async def test_reply_after_a_discarded_attempt_answers_the_user_turn(tracing: Tracing) -> None:
    tree, _ = await superseded_preemptive_session(tracing)
    reply = tree.named("agent_turn")[-1]
    (user_turn,) = tree.named("user_turn")
    assert attributes(user_turn)["lk.speech_id"] == attributes(reply)["lk.speech_id"]
    assert output_of(user_turn) == "what is the weather in Paris"
    assert_whole(tree, tracing.lifecycle)


# -- agent handoff -----------------------------------------------------------------------------
class BillingAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You handle billing questions.")


@function_tool
async def transfer_to_billing() -> Agent:
    """Transfer the user to the billing agent."""
    return BillingAgent()


HANDOFF_TURNS = [
    UserTurn("I have a billing question", reply=ToolCall("transfer_to_billing")),
    UserTurn("what do I owe"),
    UserTurn("thanks"),
]


async def handoff_session(tracing: Tracing) -> TracedRun:
    agent = ScriptedAgent(tools=[transfer_to_billing])
    return await trace_session(tracing, HANDOFF_TURNS, agent=agent, mode="text")


async def test_handoff_keeps_one_agent_turn_per_reply(tracing: Tracing) -> None:
    traced = await handoff_session(tracing)
    turns = traced.tree.named("agent_turn")
    assert [traced.tree.child_names(turn) for turn in turns] == [
        tool_only_step(),
        SPEAKING_STEP,
        SPEAKING_STEP,
    ]
    assert attributes(traced.tree.one("function_tool"))["gen_ai.tool.name"] == (
        "transfer_to_billing"
    )
    assert_whole(traced.tree, traced.lifecycle)


TEXT_TURN_HAS_NO_AGENT_NAME = (
    "product bug: SessionRecorder._on_speech_created finds the agent through "
    "compat.current_activity(), which is unset when speech_created is emitted from the "
    "caller's task (session.run / generate_reply), so text-mode agent_turns get no "
    "lk.agent.name"
)


async def test_turns_after_a_handoff_carry_the_new_agent_name(tracing: Tracing) -> None:
    traced = await handoff_session(tracing)
    names = [attributes(turn).get("lk.agent.name") for turn in traced.tree.named("agent_turn")]
    assert names == [ScriptedAgent().label, BillingAgent().label, BillingAgent().label]


# -- session closed while the agent speaks ----------------------------------------------------
async def close_mid_reply(tracing: Tracing) -> SpanTree:
    conv = ScriptedConversation(llm=ScriptedLLM([LONG_REPLY]))
    await conv.start()
    hold = conv.audio_output.hold_next_segment()
    conv.session.generate_reply(user_input="tell me a long story")
    await asyncio.wait_for(hold.captured, 5)
    await conv.session.aclose()
    await conv.aclose()
    return tracing.tree()


async def test_session_closed_mid_reply_ends_every_span(tracing: Tracing) -> None:
    tree = await close_mid_reply(tracing)
    assert tree.outline() == [
        "agent_session",
        "  session_start",
        "  user_turn",
        "  agent_turn",
        "    llm_node",
        "    tts_node",
        "  session_close",
    ]
    assert_whole(tree, tracing.lifecycle)


async def test_session_closed_mid_reply_marks_the_open_agent_turn_interrupted(
    tracing: Tracing,
) -> None:
    tree = await close_mid_reply(tracing)
    assert attributes(tree.one("agent_turn"))["lk.turn.interrupted"] is True


async def test_session_closed_mid_reply_records_the_close_reason(tracing: Tracing) -> None:
    tree = await close_mid_reply(tracing)
    assert attributes(tree.one("session_close"))["lk.session.close_reason"] == "user_initiated"
    assert attributes(tree.root)["lk.session.close_reason"] == "user_initiated"
