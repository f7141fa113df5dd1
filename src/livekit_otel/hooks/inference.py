"""Hooks of a reply's inference: LLM and TTS inference and tool calls. These talk to the
session's ``NodeSpans`` only.

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
from ..recording.nodes import ACTIVE_NODE, Node, NodeSpans
from ..recording.recorder import current_recorder, recorder_of
from .guard import Guard, Hook, State, Wrapper, task_error
from .streams import on_first, tee_text


def _current_nodes() -> NodeSpans | None:
    recorder = current_recorder()
    return recorder.nodes if recorder is not None else None


def _nodes_of(session: Any) -> NodeSpans | None:
    recorder = recorder_of(session)
    return recorder.nodes if recorder is not None else None


# -- LLM and TTS inference -------------------------------------------------------------------
NodeStart = Callable[[NodeSpans, dict[str, Any], Guard], tuple[Node, dict[str, Any]]]
NodeFinish = Callable[[NodeSpans, Node, Any, Any], None]


def _inference(state: State, hook: Hook, start: NodeStart, finish: NodeFinish) -> Wrapper:
    """A wrapper for ``perform_*_inference``: a node span current in the task it creates."""

    def begin(kwargs: dict[str, Any]) -> tuple[NodeSpans, Node, dict[str, Any], Any] | None:
        nodes = _current_nodes()
        if nodes is None:
            return None
        node, call_kwargs = start(nodes, kwargs, state.guard)
        tokens = (otel_context.attach(node.context), ACTIVE_NODE.set(node))
        return nodes, node, call_kwargs, tokens

    def follow(nodes: NodeSpans, node: Node, result: Any) -> bool:
        task, data = compat.inference_task(result)
        done = functools.partial(finish, nodes, node, data)
        task.add_done_callback(state.guard.callback(done))
        return True

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = state.guard.call(hook, begin, kwargs)
        if started is None:
            return wrapped(*args, **kwargs)
        nodes, node, call_kwargs, tokens = started
        try:
            # the node and its span are current while LiveKit creates the inference task
            result = wrapped(*args, **call_kwargs)
        except BaseException as error:
            state.guard.call(hook, nodes.abandon_node, node, error)
            raise
        finally:
            state.guard.call(hook, _leave_node, tokens)
        if not state.guard.call(hook, follow, nodes, node, result):
            state.guard.call(hook, nodes.abandon_node, node)
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
    nodes: NodeSpans, kwargs: dict[str, Any], component: str
) -> tuple[str | None, str | None]:
    model, provider = kwargs.get("model"), kwargs.get("provider")
    if model is None and provider is None:
        return compat.model_and_provider(nodes.component(component))
    return model, provider


def _start_llm_node(
    nodes: NodeSpans, kwargs: dict[str, Any], guard: Guard
) -> tuple[Node, dict[str, Any]]:
    model, provider = _model_and_provider(nodes, kwargs, "llm")
    tools = compat.function_tools(kwargs.get("tool_ctx"))
    request = LlmRequest(
        model=model,
        provider=provider,
        chat_items=compat.chat_items(kwargs.get("chat_ctx")),
        tool_definitions=nodes.tool_definitions(tools) if tools else None,
        parameters=compat.model_parameters(kwargs.get("model_settings")),
    )
    return nodes.llm_started(request, compat.current_speech()), kwargs


def _finish_llm_node(nodes: NodeSpans, node: Node, data: Any, task: Any) -> None:
    reply = compat.generated_reply(data)
    nodes.llm_finished(node, reply, task.cancelled(), task_error(task))


def _start_tts_node(
    nodes: NodeSpans, kwargs: dict[str, Any], guard: Guard
) -> tuple[Node, dict[str, Any]]:
    text: list[str] | None = None
    if nodes.captures_content() and isinstance(kwargs.get("input"), AsyncIterable):
        text = []
        kwargs = {**kwargs, "input": tee_text(kwargs["input"], text)}
    model, provider = _model_and_provider(nodes, kwargs, "tts")
    node = nodes.tts_started(TtsRequest(model, provider), compat.current_speech(), text)
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


def _finish_tts_node(nodes: NodeSpans, node: Node, data: Any, task: Any) -> None:
    nodes.tts_finished(node, task.cancelled(), task_error(task))


# -- tools ------------------------------------------------------------------------------------
def tool_executions(state: State, hook: Hook) -> Wrapper:
    """``perform_tool_executions``: one ``function_tool`` span per tool call, current in it."""

    def tap(kwargs: dict[str, Any]) -> dict[str, Any] | None:
        nodes = _nodes_of(kwargs.get("session"))
        started = kwargs.get("tool_execution_started_cb")
        completed = kwargs.get("tool_execution_completed_cb")
        if nodes is None or not callable(started) or not callable(completed):
            return None
        tools = _ToolSpans(state, hook, nodes, kwargs.get("speech_handle"), started, completed)
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
        nodes: NodeSpans,
        speech: Any,
        started: Callable[..., Any],
        completed: Callable[..., Any],
    ) -> None:
        self.guard = state.guard
        self.hook = hook
        self.nodes = nodes
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
        node = self.nodes.tool_started(call, self.speech)
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
        self.nodes.tool_finished(node, ToolResult(outcome.output, outcome.is_error), error)
