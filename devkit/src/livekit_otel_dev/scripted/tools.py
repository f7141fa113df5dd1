"""A sample agent with two function tools (one answers, one raises), and known delays.

`ScriptedAgent()` with no options is a plain `Agent` with the sample tools. Opt-in
options give a test known delays at the points the contract's latency parts meet:

- `hook_delay`: its `on_user_turn_completed` sleeps that long (stamped `hook.start` /
  `hook.end`); `edit_chat_ctx=True` also adds a message to the turn's chat context,
  which makes LiveKit discard a preemptive generation.
- `tool_delays={"lookup_weather": 0.1}`: those tools sleep that long before answering
  (stamped `tool.start` / `tool.end`); `timed_tool(tool, delay)` does the same for any tool.
- `handoff_to=other_agent`: adds a `transfer_to_agent` tool that returns that agent
  (LiveKit hands the session over to it); `handoff_tool(agent)` builds such a tool.
- `playout_delay`: its `transcription_node` is an `async def` that waits until the TTS
  node of the same reply step has yielded its first frame (or ended without one), then
  sleeps `playout_delay` (stamped `playout.start` / `playout.end`) before returning the
  text. LiveKit awaits it right before it starts forwarding that step's audio to the
  output (1.3.6: `_pipeline_reply_task_impl`, before `perform_audio_forwarding`; 1.6+: per
  segment, before `forward_generation`), so the first frame reaches the output
  `playout_delay` after the first synthesized audio. A step whose TTS produced no audio
  (a tool-only step on 1.3.6) is not delayed. Audio output only.
- `timeline`: where the stamps go (`ScriptedConversation(timeline=...)` sets it on its
  scripted agent when unset). With a timeline, `tts_node` also stamps
  `tts_node.first_frame` when the node yields its first frame.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from typing import Any

from livekit import rtc
from livekit.agents import Agent, function_tool, llm

from .timeline import ScriptTimeline, current_speech_id

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "ScriptedAgent",
    "book_table",
    "handoff_tool",
    "lookup_weather",
    "timed_tool",
]

DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant. Answer briefly."

_PLAYOUT_WAIT_LIMIT = 10.0
"""Longest a playout delay waits for the TTS node before giving up and sleeping anyway."""

_runs = itertools.count(1)


@function_tool
async def lookup_weather(location: str) -> str:
    """Look up the current weather for a location.

    Args:
        location: The city or place to look up.
    """
    return f"It is sunny and 21 degrees in {location}"


@function_tool
async def book_table(restaurant: str, people: int = 2) -> str:
    """Book a table at a restaurant. Always fails (it exercises the tool error path).

    Args:
        restaurant: The restaurant's name.
        people: How many people the table is for.
    """
    raise RuntimeError(f"no table for {people} available at {restaurant}")


def _tool_function(tool: Any) -> Callable[..., Any]:
    """The decorated function of a function tool (1.3.6: the function itself)."""
    return getattr(tool, "__wrapped__", None) or getattr(tool, "_func", None) or tool


def _tool_name(tool: Any) -> str:
    info = getattr(tool, "info", None)
    if info is not None and getattr(info, "name", None):
        return str(info.name)
    get_info = getattr(getattr(llm, "tool_context", None), "get_function_info", None)
    if get_info is not None:
        try:
            return str(get_info(tool).name)
        except Exception:  # not a function tool of this release's shape
            pass
    return str(getattr(_tool_function(tool), "__name__", "tool"))


def timed_tool(
    tool: Any,
    delay: float,
    *,
    timeline: ScriptTimeline | Callable[[], ScriptTimeline | None] | None = None,
) -> Any:
    """The function tool `tool`, sleeping `delay` seconds before it runs.

    Same name, description and arguments. With a `timeline` (or a callable giving one at
    call time), each call stamps `tool.start` before the sleep and `tool.end` once the
    tool returned or raised (`data`: name, run).
    """
    fn = _tool_function(tool)
    name = _tool_name(tool)

    @functools.wraps(fn)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        clock = timeline() if callable(timeline) else timeline
        run = next(_runs)
        if clock is not None:
            clock.stamp("tool.start", name=name, run=run)
        try:
            await asyncio.sleep(delay)
            return await fn(*args, **kwargs)
        finally:
            if clock is not None:
                clock.stamp("tool.end", name=name, run=run)

    return function_tool(timed, name=name)


def handoff_tool(
    target: Agent,
    *,
    name: str = "transfer_to_agent",
    description: str = "Hand the conversation over to another agent.",
    message: str | None = None,
    on_call: Callable[[], None] | None = None,
) -> Any:
    """A function tool that hands the session over to `target` (it returns the agent).

    With `message`, it returns `(target, message)`: LiveKit also records that tool output.
    `on_call` runs first (e.g. to pass a timeline on to the target).
    """

    async def handoff() -> Any:
        if on_call is not None:
            on_call()
        return (target, message) if message is not None else target

    return function_tool(handoff, name=name, description=description)


class _Step:
    """One reply step's TTS run, for the playout delay: resolved at its first frame
    (True) or when it ended without audio (False)."""

    def __init__(self) -> None:
        self.heard: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def resolve(self, heard: bool) -> None:
        if not self.heard.done():
            self.heard.set_result(heard)


class ScriptedAgent(Agent):
    """An `Agent` with the sample tools `lookup_weather` and `book_table` by default.

    The keyword options (all off by default) add known delays and stamps; see the
    module docstring.
    """

    def __init__(
        self,
        *,
        instructions: str = DEFAULT_INSTRUCTIONS,
        tools: list[Any] | None = None,
        timeline: ScriptTimeline | None = None,
        hook_delay: float = 0.0,
        edit_chat_ctx: bool = False,
        playout_delay: float = 0.0,
        tool_delays: Mapping[str, float] | None = None,
        handoff_to: Agent | None = None,
    ) -> None:
        chosen: list[Any] = [lookup_weather, book_table] if tools is None else list(tools)
        if tool_delays:
            chosen = [
                timed_tool(t, tool_delays[n], timeline=self._timeline)
                if (n := _tool_name(t)) in tool_delays
                else t
                for t in chosen
            ]
        if handoff_to is not None:
            chosen.append(handoff_tool(handoff_to, on_call=self._pass_timeline_to(handoff_to)))
        super().__init__(instructions=instructions, tools=chosen)
        self.timeline = timeline
        self.hook_delay = hook_delay
        self.edit_chat_ctx = edit_chat_ctx
        self.playout_delay = playout_delay
        self._steps: dict[str | None, list[_Step]] = {}
        self._tts_runs: dict[str | None, int] = {}
        self._transcriptions: dict[str | None, int] = {}

    def _timeline(self) -> ScriptTimeline | None:
        return self.timeline

    def _pass_timeline_to(self, target: Agent) -> Callable[[], None]:
        def _pass() -> None:
            if isinstance(target, ScriptedAgent) and target.timeline is None:
                target.timeline = self.timeline

        return _pass

    def _stamp(self, name: str, **data: Any) -> None:
        if self.timeline is not None:
            self.timeline.stamp(name, **data)

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """Sleep `hook_delay` (stamped), and edit the chat context if asked."""
        if self.timeline is None and not self.hook_delay and not self.edit_chat_ctx:
            return await super().on_user_turn_completed(turn_ctx, new_message)
        text = new_message.text_content or ""
        self._stamp("hook.start", text=text)
        if self.hook_delay > 0:
            await asyncio.sleep(self.hook_delay)
        if self.edit_chat_ctx:
            turn_ctx.add_message(role="system", content=f"(scripted note on: {text})")
        self._stamp("hook.end", text=text)

    # -- playout delay: the TTS node and the transcription node of a reply step, paired

    def _step(self, counts: dict[str | None, int], speech_id: str | None) -> _Step:
        """The reply step of the n-th call counted in `counts` for this speech.

        Every release calls the TTS node and the transcription node once per step (per
        text segment from 1.6) in the same order, so the n-th of each belong together.
        """
        index = counts.get(speech_id, 0)
        counts[speech_id] = index + 1
        steps = self._steps.setdefault(speech_id, [])
        while len(steps) <= index:
            steps.append(_Step())
        return steps[index]

    def tts_node(self, text: AsyncIterable[str], model_settings: Any) -> Any:
        """LiveKit's default TTS node; watched when there is a timeline or a playout delay."""
        frames = super().tts_node(text, model_settings)
        if self.timeline is None and not self.playout_delay:
            return frames
        speech_id = current_speech_id()
        step = self._step(self._tts_runs, speech_id) if self.playout_delay else None
        return self._watched(frames, step, speech_id)

    async def _watched(
        self, frames: Any, step: _Step | None, speech_id: str | None
    ) -> AsyncIterator[rtc.AudioFrame]:
        try:
            if asyncio.iscoroutine(frames):
                frames = await frames
            if frames is None:
                return
            iterator = frames.__aiter__()
            first = True
            try:
                async for frame in iterator:
                    if first:
                        first = False
                        self._stamp("tts_node.first_frame", speech_id=speech_id)
                        if step is not None:
                            step.resolve(True)
                    yield frame
            finally:
                close = getattr(iterator, "aclose", None)
                if close is not None:
                    await close()
        finally:
            if step is not None:
                step.resolve(False)

    def transcription_node(self, text: AsyncIterable[Any], model_settings: Any) -> Any:
        """LiveKit's default transcription node, awaited after the playout delay if set."""
        if not self.playout_delay:
            return super().transcription_node(text, model_settings)
        return self._delayed_transcription(text, model_settings)

    async def _delayed_transcription(self, text: AsyncIterable[Any], model_settings: Any) -> Any:
        from livekit.agents.voice import agent_activity

        var = getattr(agent_activity, "_SpeechHandleContextVar", None)
        speech = var.get(None) if var is not None else None
        speech_id = getattr(speech, "id", None)
        session = self.session
        if session.output.audio is not None and session.output.audio_enabled:
            step = self._step(self._transcriptions, speech_id)
            waiting = asyncio.shield(step.heard)
            try:
                if speech is not None:
                    await asyncio.wait_for(
                        speech.wait_if_not_interrupted([waiting]), _PLAYOUT_WAIT_LIMIT
                    )
                else:
                    await asyncio.wait_for(waiting, _PLAYOUT_WAIT_LIMIT)
            except asyncio.TimeoutError:
                pass
            interrupted = speech is not None and speech.interrupted
            if not interrupted and (not step.heard.done() or step.heard.result()):
                self._stamp("playout.start", delay=self.playout_delay)
                await asyncio.sleep(self.playout_delay)
                self._stamp("playout.end", delay=self.playout_delay)
        return super().transcription_node(text, model_settings)
