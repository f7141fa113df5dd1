"""Two closes at once: one ``session_close``, ended, with the reason LiveKit closed for.

A second close that arrives while the first runs (``shutdown()`` then ``aclose()``, or two
closes awaited together) waits for LiveKit's close lock and then finds the session closed.
The reason LiveKit closed for is the one of its own ``close`` event, recorded by a listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents.voice.events import CloseReason
from livekit_otel_dev.scripted import ScriptedConversation, UserTurn

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
