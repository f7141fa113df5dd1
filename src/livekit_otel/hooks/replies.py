"""Hooks of the agent's replies: LLM and TTS inference, tool calls, realtime responses and
the audio handed to the output. These talk to the session's ``Replies`` only.

Each inference runs in a task LiveKit creates inside the wrapped call: the node's span
and the node itself are made current around that call, so the task inherits both and
LiveKit's metrics, emitted inside it, find their span.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterable, Callable
from typing import Any

from opentelemetry import context as otel_context

from .. import compat
from ..mapping.facts import LlmRequest, ToolCall, ToolResult, TtsRequest
from ..recording.latency import Timeline
from ..recording.recorder import current_recorder, recorder_of
from ..recording.replies import ACTIVE_NODE, Node, Replies
from .guard import Guard, Hook, State, Wrapper, task_error
from .streams import on_first, tee_text


def _current_replies() -> Replies | None:
    recorder = current_recorder()
    return recorder.replies if recorder is not None else None


def _replies_of(session: Any) -> Replies | None:
    recorder = recorder_of(session)
    return recorder.replies if recorder is not None else None


# -- LLM and TTS inference -------------------------------------------------------------------
NodeStart = Callable[[Replies, dict[str, Any], Guard], tuple[Node, dict[str, Any]]]
NodeFinish = Callable[[Replies, Node, Any, Any], None]


def _inference(state: State, hook: Hook, start: NodeStart, finish: NodeFinish) -> Wrapper:
    """A wrapper for ``perform_*_inference``: a node span current in the task it creates."""

    def begin(kwargs: dict[str, Any]) -> tuple[Replies, Node, dict[str, Any], Any] | None:
        replies = _current_replies()
        if replies is None:
            return None
        node, call_kwargs = start(replies, kwargs, state.guard)
        tokens = (otel_context.attach(node.context), ACTIVE_NODE.set(node))
        return replies, node, call_kwargs, tokens

    def follow(replies: Replies, node: Node, result: Any) -> bool:
        task, data = compat.inference_task(result)
        done = functools.partial(finish, replies, node, data)
        task.add_done_callback(state.guard.callback(done))
        return True

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = state.guard.call(hook, begin, kwargs)
        if started is None:
            return wrapped(*args, **kwargs)
        replies, node, call_kwargs, tokens = started
        try:
            # the node and its span are current while LiveKit creates the inference task
            result = wrapped(*args, **call_kwargs)
        except BaseException as error:
            state.guard.call(hook, replies.abandon_node, node, error)
            raise
        finally:
            state.guard.call(hook, _leave_node, tokens)
        if not state.guard.call(hook, follow, replies, node, result):
            state.guard.call(hook, replies.abandon_node, node)
        return result

    return wrapper


def _leave_node(tokens: tuple[Any, Any]) -> None:
    ACTIVE_NODE.reset(tokens[1])
    otel_context.detach(tokens[0])


def llm_inference(state: State, hook: Hook) -> Wrapper:
    """``perform_llm_inference``: one ``llm_node`` span per LLM call, user overrides included."""
    return _inference(state, hook, _start_llm_node, _finish_llm_node)


def tts_inference(state: State, hook: Hook) -> Wrapper:
    """``perform_tts_inference``: one ``tts_node`` span per synthesis, with the spoken text."""
    return _inference(state, hook, _start_tts_node, _finish_tts_node)


def _model_and_provider(
    replies: Replies, kwargs: dict[str, Any], component: str
) -> tuple[str | None, str | None]:
    model, provider = kwargs.get("model"), kwargs.get("provider")
    if model is None and provider is None:
        return compat.model_and_provider(replies.component(component))
    return model, provider


def _start_llm_node(
    replies: Replies, kwargs: dict[str, Any], guard: Guard
) -> tuple[Node, dict[str, Any]]:
    model, provider = _model_and_provider(replies, kwargs, "llm")
    tools = compat.function_tools(kwargs.get("tool_ctx"))
    request = LlmRequest(
        model=model,
        provider=provider,
        chat_items=compat.chat_items(kwargs.get("chat_ctx")),
        tool_definitions=replies.tool_definitions(tools) if tools else None,
        parameters=compat.model_parameters(kwargs.get("model_settings")),
    )
    return replies.llm_started(request, compat.current_speech()), kwargs


def _finish_llm_node(replies: Replies, node: Node, data: Any, task: Any) -> None:
    reply = compat.generated_reply(data)
    replies.llm_finished(node, reply, task.cancelled(), task_error(task))


def _start_tts_node(
    replies: Replies, kwargs: dict[str, Any], guard: Guard
) -> tuple[Node, dict[str, Any]]:
    text: list[str] | None = None
    if replies.captures_content() and isinstance(kwargs.get("input"), AsyncIterable):
        text = []
        kwargs = {**kwargs, "input": tee_text(kwargs["input"], text)}
    model, provider = _model_and_provider(replies, kwargs, "tts")
    node = replies.tts_started(TtsRequest(model, provider), compat.current_speech(), text)
    if node.turn is not None and callable(kwargs.get("node")):
        stamped = _stamping_tts_node(kwargs["node"], node.turn.timeline, guard)
        kwargs = {**kwargs, "node": stamped}
    return node, kwargs


def _stamping_tts_node(
    tts_node: Callable[..., Any], timeline: Timeline, guard: Guard
) -> Callable[..., Any]:
    """LiveKit's TTS node, noting when it yields its first audio frame.

    LiveKit awaits a node that returns a coroutine, then iterates what it returns.
    """
    synthesized = guard.callback(timeline.audio_synthesized)

    async def node(*args: Any, **kwargs: Any) -> Any:
        frames = tts_node(*args, **kwargs)
        if asyncio.iscoroutine(frames):
            frames = await frames
        if not isinstance(frames, AsyncIterable):
            return frames
        return on_first(frames, synthesized)

    return node


def _finish_tts_node(replies: Replies, node: Node, data: Any, task: Any) -> None:
    replies.tts_finished(node, task.cancelled(), task_error(task))


# -- tools ------------------------------------------------------------------------------------
def tool_executions(state: State, hook: Hook) -> Wrapper:
    """``perform_tool_executions``: one ``function_tool`` span per tool call, current in it."""

    def tap(kwargs: dict[str, Any]) -> dict[str, Any] | None:
        replies = _replies_of(kwargs.get("session"))
        started = kwargs.get("tool_execution_started_cb")
        completed = kwargs.get("tool_execution_completed_cb")
        if replies is None or not callable(started) or not callable(completed):
            return None
        tools = _ToolSpans(state, hook, replies, kwargs.get("speech_handle"), started, completed)
        return {
            **kwargs,
            "tool_execution_started_cb": tools.started,
            "tool_execution_completed_cb": tools.completed,
        }

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tapped = state.guard.call(hook, tap, kwargs)
        return wrapped(*args, **(tapped if tapped is not None else kwargs))

    return wrapper


class _ToolSpans:
    """Opens a span as each tool starts, ends it with the tool's output."""

    def __init__(
        self,
        state: State,
        hook: Hook,
        replies: Replies,
        speech: Any,
        started: Callable[..., Any],
        completed: Callable[..., Any],
    ) -> None:
        self.guard = state.guard
        self.hook = hook
        self.replies = replies
        self.speech = speech
        self.original_started = started
        self.original_completed = completed
        self.open: dict[str, Node] = {}

    def started(self, function_call: Any, *args: Any, **kwargs: Any) -> Any:
        self.guard.call(self.hook, self._start_current, function_call)
        return self.original_started(function_call, *args, **kwargs)

    def _start_current(self, function_call: Any) -> None:
        node = self._start(function_call)
        # the tool's task is created right after this callback, in this task: making the
        # span current here makes it current for the tool and what the tool calls
        otel_context.attach(node.context)

    def _start(self, function_call: Any) -> Node:
        call = ToolCall(*compat.function_call_fields(function_call))
        node = self.replies.tool_started(call, self.speech)
        self.open[call.call_id] = node
        return node

    def completed(self, output: Any, *args: Any, **kwargs: Any) -> Any:
        self.guard.call(self.hook, self._end, output)
        return self.original_completed(output, *args, **kwargs)

    def _end(self, output: Any) -> None:
        outcome = compat.tool_outcome(output)
        if outcome.call is None:
            return
        _, call_id, _ = compat.function_call_fields(outcome.call)
        # an unknown tool or unparsable arguments: LiveKit reports it without a start
        node = self.open.pop(call_id, None) or self._start(outcome.call)
        self.open.pop(call_id, None)
        error = outcome.exception
        if error is None and outcome.is_error:
            error = RuntimeError("the tool reported an error")
        self.replies.tool_finished(node, ToolResult(outcome.output, outcome.is_error), error)


# -- realtime responses ------------------------------------------------------------------------
def realtime_generation(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity._realtime_generation_task``: one ``realtime_response`` per response."""

    def begin(instance: Any, kwargs: dict[str, Any]) -> Any:
        replies = _replies_of(compat.activity_session(instance))
        if replies is None:
            return None
        response_id, user_initiated = compat.generation_response(kwargs.get("generation_ev"))
        prompt = compat.realtime_prompt(instance, kwargs.get("instructions"))
        response = replies.realtime_started(
            kwargs.get("speech_handle"), response_id, user_initiated, prompt
        )
        return (replies, response) if response is not None else None

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = state.guard.call(hook, begin, instance, kwargs)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            if started is not None:
                state.guard.call(hook, started[0].realtime.returned, started[1])

    return wrapper


# -- audio handed to the output ------------------------------------------------------------------
def audio_forwarding(state: State, hook: Hook) -> Wrapper:
    """``perform_audio_forwarding``: when a reply's first frame is handed to the audio output."""

    def tap(kwargs: dict[str, Any]) -> dict[str, Any] | None:
        replies, frames = _current_replies(), kwargs.get("tts_output")
        if replies is None or not isinstance(frames, AsyncIterable):
            return None
        noters = replies.output_started(compat.current_speech(), kwargs.get("audio_output"))
        if noters is None:
            return None
        handed_over, forwarded = map(state.guard.callback, noters)
        return {**kwargs, "tts_output": on_first(frames, handed_over, forwarded)}

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tapped = state.guard.call(hook, tap, kwargs)
        return wrapped(*args, **(tapped if tapped is not None else kwargs))

    return wrapper
