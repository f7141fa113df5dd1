"""Two closes at once: one ``session_close``, ended, with the reason LiveKit closed for.

A second close that arrives while the first runs (``shutdown()`` then ``aclose()``, or two
closes awaited together) waits for LiveKit's close lock and then finds the session closed.
The reason LiveKit closed for is the one of its own ``close`` event, recorded by a listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import RunContext, function_tool
from livekit.agents.voice.events import CloseReason
from livekit_otel_dev.scripted import ScriptedAgent, ScriptedConversation, ToolCall, UserTurn

from support.tracing import SpanTree, Tracing, attributes, instrumented


async def _close_twice(close: Callable[[Any], Awaitable[None]]) -> tuple[Tracing, SpanTree, str]:
    with instrumented() as tracing:
        conversation = ScriptedConversation()
        session = await conversation.start()
        reasons: list[str] = []
        session.on("close", lambda event: reasons.append(str(event.reason.value)))
        await conversation.user_says(UserTurn("hello there"))
        await close(session)
        await asyncio.sleep(0.05)
        conversation.audio_input.close()
        (reason,) = reasons
        return tracing, tracing.tree(), reason


async def _gathered(session: Any) -> None:
    await asyncio.gather(session._aclose_impl(reason=CloseReason.ERROR), session.aclose())


async def _shutdown_then_aclose(session: Any) -> None:
    session.shutdown()
    await session.aclose()


async def test_two_closes_awaited_together_make_one_ended_session_close() -> None:
    tracing, tree, _ = await _close_twice(_gathered)
    assert len(tree.named("session_close")) == 1
    assert tracing.lifecycle.still_open == []


async def test_two_closes_awaited_together_keep_the_reason_livekit_closed_for() -> None:
    _, tree, reason = await _close_twice(_gathered)
    assert attributes(tree.one("session_close"))["lk.session.close_reason"] == reason
    assert attributes(tree.one("agent_session"))["lk.session.close_reason"] == reason


async def test_shutdown_then_aclose_make_one_ended_session_close() -> None:
    tracing, tree, _ = await _close_twice(_shutdown_then_aclose)
    assert len(tree.named("session_close")) == 1
    assert tracing.lifecycle.still_open == []


async def test_shutdown_then_aclose_keep_the_reason_livekit_closed_for() -> None:
    _, tree, reason = await _close_twice(_shutdown_then_aclose)
    assert attributes(tree.one("session_close"))["lk.session.close_reason"] == reason
    assert attributes(tree.one("agent_session"))["lk.session.close_reason"] == reason


async def test_the_second_close_leaves_every_span_of_the_session_in_one_trace() -> None:
    _, tree, _ = await _close_twice(_gathered)
    assert len(tree.trace_ids()) == 1
    assert tree.outside_parent() == []


async def test_a_tool_closing_the_session_while_it_closes_leaves_one_ended_session_close() -> None:
    entered, closing = asyncio.Event(), asyncio.Event()
    second: list[asyncio.Future[None]] = []  # the tool's close

    @function_tool
    async def end_call(context: RunContext) -> str:
        """End the call."""
        entered.set()
        await closing.wait()  # the session is being closed
        second.append(asyncio.ensure_future(context.session.aclose()))
        return "bye"

    with instrumented() as tracing:
        conversation = ScriptedConversation(agent=ScriptedAgent(tools=[end_call]))
        session = await conversation.start()
        reasons: list[str] = []
        session.on("close", lambda event: reasons.append(str(event.reason.value)))
        said = asyncio.ensure_future(
            conversation.user_says(UserTurn("goodbye", reply=ToolCall("end_call", {})))
        )
        await asyncio.wait_for(entered.wait(), 5.0)
        first = asyncio.ensure_future(session._aclose_impl(reason=CloseReason.JOB_SHUTDOWN))
        await asyncio.sleep(0)
        closing.set()
        await asyncio.wait_for(first, 5.0)
        await asyncio.wait_for(asyncio.gather(*second), 5.0)
        said.cancel()
        await asyncio.gather(said, return_exceptions=True)
        conversation.audio_input.close()
        tree = tracing.tree()
        (reason,) = reasons
        assert tracing.lifecycle.still_open == []
    assert len(second) == 1  # the tool did call aclose() during the close
    assert len(tree.named("session_close")) == 1
    assert attributes(tree.one("session_close"))["lk.session.close_reason"] == reason
