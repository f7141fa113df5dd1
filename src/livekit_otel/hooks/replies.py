"""Wrappers of LiveKit's LLM and TTS inference and tool executions: the reply's node spans.

Each inference runs in a task LiveKit creates inside the wrapped call: the node's span
and the node itself are made current around that call, so the task inherits both and
LiveKit's metrics, emitted inside it, find their span.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from opentelemetry import context as otel_context

from .. import compat
from ..mapping.facts import LlmRequest, ToolCall, ToolResult, TtsRequest
from ..recording.latency import Timeline
from ..recording.recorder import SessionRecorder
from ..recording.replies import ACTIVE_NODE, Node
from .guard import (
    State,
    Wrapper,
    current_recorder,
    guarded_done,
    recorder_of,
    safely,
    task_error,
)
from .streams import on_first


def _run_in_node(node: Node, call: Callable[[], Any]) -> Any:
    """Call ``call`` with ``node`` current, so the task it creates inherits both."""
    token = otel_context.attach(node.context)
    node_token = ACTIVE_NODE.set(node)
    try:
        return call()
    finally:
        ACTIVE_NODE.reset(node_token)
        otel_context.detach(token)


NodeStart = Callable[[SessionRecorder, dict[str, Any]], tuple[Node, dict[str, Any]]]
NodeFinish = Callable[[SessionRecorder, Node, Any, Any], None]


def _inference(state: State, hook: str, start: NodeStart, finish: NodeFinish) -> Wrapper:
    """A wrapper for ``perform_*_inference``: a node span current in the task it creates."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = current_recorder()
        if recorder is None:
            return wrapped(*args, **kwargs)
        try:
            node, call_kwargs = start(recorder, kwargs)
        except Exception:
            state.report(hook)
            return wrapped(*args, **kwargs)
        try:
            result = _run_in_node(node, lambda: wrapped(*args, **call_kwargs))
        except BaseException as error:
            safely(state, hook, recorder.replies.abandon_node, node, error)
            raise
        try:
            task, data = compat.inference_task(result)
            task.add_done_callback(
                functools.partial(guarded_done, state, finish, recorder, node, data)
            )
        except Exception:
            state.report(hook)
            safely(state, hook, recorder.replies.abandon_node, node)
        return result

    return wrapper


def llm_inference(state: State) -> Wrapper:
    """``perform_llm_inference``: one ``llm_node`` span per LLM call, user overrides included."""
    return _inference(state, "perform_llm_inference", _start_llm_node, _finish_llm_node)


def tts_inference(state: State) -> Wrapper:
    """``perform_tts_inference``: one ``tts_node`` span per synthesis, with the spoken text."""
    return _inference(state, "perform_tts_inference", _start_tts_node, _finish_tts_node)


def _model_and_provider(
    recorder: SessionRecorder, kwargs: dict[str, Any], component: str
) -> tuple[str | None, str | None]:
    model, provider = kwargs.get("model"), kwargs.get("provider")
    if model is None and provider is None:
        return compat.model_and_provider(recorder.replies.component(component))
    return model, provider


def _start_llm_node(
    recorder: SessionRecorder, kwargs: dict[str, Any]
) -> tuple[Node, dict[str, Any]]:
    model, provider = _model_and_provider(recorder, kwargs, "llm")
    tools = compat.function_tools(kwargs.get("tool_ctx"))
    request = LlmRequest(
        model=model,
        provider=provider,
        chat_items=compat.chat_items(kwargs.get("chat_ctx")),
        tool_definitions=recorder.replies.tool_definitions(tools) if tools else None,
        parameters=compat.model_parameters(kwargs.get("model_settings")),
    )
    return recorder.replies.llm_started(request, compat.current_speech()), kwargs


def _finish_llm_node(recorder: SessionRecorder, node: Node, data: Any, task: Any) -> None:
    reply = compat.generated_reply(data)
    recorder.replies.llm_finished(node, reply, task.cancelled(), task_error(task))


async def _tee_text(source: AsyncIterable[str], sink: list[str]) -> AsyncIterator[str]:
    """Pass text through unchanged, keeping a copy of each piece."""
    iterator = source.__aiter__()
    try:
        async for piece in iterator:
            if isinstance(piece, str):
                sink.append(piece)
            yield piece
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _start_tts_node(
    recorder: SessionRecorder, kwargs: dict[str, Any]
) -> tuple[Node, dict[str, Any]]:
    text: list[str] | None = None
    if recorder.conventions.captures_content() and isinstance(kwargs.get("input"), AsyncIterable):
        text = []
        kwargs = {**kwargs, "input": _tee_text(kwargs["input"], text)}
    model, provider = _model_and_provider(recorder, kwargs, "tts")
    node = recorder.replies.tts_started(TtsRequest(model, provider), compat.current_speech(), text)
    if node.turn is not None and callable(kwargs.get("node")):
        kwargs = {**kwargs, "node": _stamping_tts_node(kwargs["node"], node.turn.timeline)}
    return node, kwargs


def _stamping_tts_node(tts_node: Callable[..., Any], timeline: Timeline) -> Callable[..., Any]:
    """LiveKit's TTS node, noting when it yields its first audio frame.

    LiveKit awaits a node that returns a coroutine, then iterates what it returns.
    """

    async def node(*args: Any, **kwargs: Any) -> Any:
        frames = tts_node(*args, **kwargs)
        if asyncio.iscoroutine(frames):
            frames = await frames
        if not isinstance(frames, AsyncIterable):
            return frames
        return on_first(frames, timeline.audio_synthesized)

    return node


def _finish_tts_node(recorder: SessionRecorder, node: Node, data: Any, task: Any) -> None:
    recorder.replies.tts_finished(node, task.cancelled(), task_error(task))


def tool_executions(state: State) -> Wrapper:
    """``perform_tool_executions``: one ``function_tool`` span per tool call, current in it."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(kwargs.get("session"))
        started = kwargs.get("tool_execution_started_cb")
        completed = kwargs.get("tool_execution_completed_cb")
        if recorder is None or not callable(started) or not callable(completed):
            return wrapped(*args, **kwargs)
        tools = _ToolSpans(state, recorder, kwargs.get("speech_handle"), started, completed)
        kwargs = {
            **kwargs,
            "tool_execution_started_cb": tools.started,
            "tool_execution_completed_cb": tools.completed,
        }
        return wrapped(*args, **kwargs)

    return wrapper


class _ToolSpans:
    """Opens a span as each tool starts, ends it with the tool's output."""

    def __init__(
        self,
        state: State,
        recorder: SessionRecorder,
        speech: Any,
        started: Callable[..., Any],
        completed: Callable[..., Any],
    ) -> None:
        self.state = state
        self.recorder = recorder
        self.speech = speech
        self.original_started = started
        self.original_completed = completed
        self.open: dict[str, Node] = {}

    def started(self, function_call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            node = self._start(function_call)
            # the tool's task is created right after this callback, in this task: making the
            # span current here makes it current for the tool and what the tool calls
            otel_context.attach(node.context)
        except Exception:
            self.state.report("tool_execution_started_cb")
        return self.original_started(function_call, *args, **kwargs)

    def _start(self, function_call: Any) -> Node:
        call = ToolCall(*compat.function_call_fields(function_call))
        node = self.recorder.replies.tool_started(call, self.speech)
        self.open[call.call_id] = node
        return node

    def completed(self, output: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            self._end(output)
        except Exception:
            self.state.report("tool_execution_completed_cb")
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
        self.recorder.replies.tool_finished(
            node, ToolResult(outcome.output, outcome.is_error), error
        )
