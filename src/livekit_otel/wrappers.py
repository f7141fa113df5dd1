"""Wrapper factories for the hooks in the instrumentor's wrap table.

Every wrapper is thin: it hands what it sees to the session's recorder and calls the
wrapped function exactly once, unchanged. A failure of livekit-otel itself is caught,
logged once per hook, and never reaches the agent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer
from opentelemetry.util.types import AttributeValue

from . import attributes as attr
from . import compat, content
from .config import Options
from .recorder import ACTIVE_NODE, COMMITTING_TURN, Node, SessionRecorder

logger = logging.getLogger("livekit_otel")

RECORDER_ATTRIBUTE = "_livekit_otel_recorder"
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class State:
    """What every wrapper shares: the tracer and options in force, and which hooks failed."""

    def __init__(self, tracer: Tracer, options: Options) -> None:
        self.tracer = tracer
        self.options = options
        self.on_session_start: Callable[[], None] | None = None
        self._reported: set[str] = set()

    def report(self, hook: str) -> None:
        """Log an internal failure of ``hook`` once, with its traceback."""
        if hook in self._reported:
            return
        self._reported.add(hook)
        logger.warning(
            "livekit-otel failed inside its %s hook; the agent is unaffected and this hook "
            "may record less from now on",
            hook,
            exc_info=True,
        )


def recorder_of(session: Any) -> SessionRecorder | None:
    """The recorder of a session, if it is being traced."""
    if session is None:
        return None
    recorder = getattr(session, RECORDER_ATTRIBUTE, None)
    return recorder if isinstance(recorder, SessionRecorder) and not recorder.closed else None


def _current_recorder() -> SessionRecorder | None:
    activity = compat.current_activity()
    return recorder_of(compat.activity_session(activity)) if activity is not None else None


# -- session ------------------------------------------------------------------------------
def session_start(state: State) -> Wrapper:
    """``AgentSession.start``: open ``agent_session`` and ``session_start``."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = None
        token = None
        try:
            if recorder_of(instance) is None and not getattr(instance, "_started", False):
                if state.on_session_start is not None:
                    state.on_session_start()
                agent = args[0] if args else kwargs.get("agent")
                recorder = SessionRecorder(state.tracer, state.options, instance, agent)
                setattr(instance, RECORDER_ATTRIBUTE, recorder)
                token = otel_context.attach(recorder.start_context())
        except Exception:
            state.report("AgentSession.start")
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            if recorder is not None:
                _safely(state, "AgentSession.start", recorder.start_failed, error)
            raise
        finally:
            if token is not None and recorder is not None:
                _detach_if_current(token, recorder)
        if recorder is not None:
            _safely(state, "AgentSession.start", recorder.session_started, None)
        return result

    return wrapper


def _detach_if_current(token: Any, recorder: SessionRecorder) -> None:
    # LiveKit attaches its own session context inside start() and never detaches it; when it
    # did, leave both in place rather than unwind LiveKit's
    if otel_context.get_current() is recorder.start_context():
        otel_context.detach(token)


def session_close(state: State) -> Wrapper:
    """``AgentSession._aclose_impl``: ``session_close``, then end everything still open."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(instance)
        if recorder is None or not getattr(instance, "_started", True):
            return await wrapped(*args, **kwargs)
        token = None
        try:
            close_context = recorder.close_started(kwargs.get("reason"), kwargs.get("error"))
            token = otel_context.attach(close_context)
        except Exception:
            state.report("AgentSession._aclose_impl")
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            _safely(state, "AgentSession._aclose_impl", recorder.close_finished, error)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        _safely(state, "AgentSession._aclose_impl", recorder.close_finished, None)
        return result

    return wrapper


def session_emit(state: State) -> Wrapper:
    """``AgentSession.emit``: every session event, LiveKit metrics included."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = getattr(instance, RECORDER_ATTRIBUTE, None)
        if recorder is not None and len(args) >= 2:
            try:
                recorder.on_event(args[0], args[1])
            except Exception:
                state.report("AgentSession.emit")
        return wrapped(*args, **kwargs)

    return wrapper


# -- user turns -----------------------------------------------------------------------------
def end_of_turn(state: State) -> Wrapper:
    """``AgentActivity.on_end_of_turn``: the moment LiveKit commits the user's turn."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(compat.activity_session(instance))
        if recorder is None:
            return wrapped(*args, **kwargs)
        try:
            info = args[0] if args else kwargs.get("info")
            turn = recorder.begin_commit(getattr(info, "new_transcript", None))
        except Exception:
            state.report("AgentActivity.on_end_of_turn")
            return wrapped(*args, **kwargs)
        token = COMMITTING_TURN.set(turn)
        accepted = False
        try:
            result = wrapped(*args, **kwargs)
            accepted = result is not False
        finally:
            COMMITTING_TURN.reset(token)
            _safely(state, "AgentActivity.on_end_of_turn", recorder.finish_commit, turn, accepted)
        return result

    return wrapper


# -- inference and tools ------------------------------------------------------------------
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
        recorder = _current_recorder()
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
            _safely(state, hook, recorder.end_node, node, None, error)
            raise
        try:
            task, data = result
            task.add_done_callback(
                functools.partial(_guarded_done, state, finish, recorder, node, data)
            )
        except Exception:
            state.report(hook)
            _safely(state, hook, recorder.end_node, node)
        return result

    return wrapper


def llm_inference(state: State) -> Wrapper:
    """``perform_llm_inference``: one ``llm_node`` span per LLM call, user overrides included."""
    return _inference(state, "perform_llm_inference", _start_llm_node, _finish_llm_node)


def tts_inference(state: State) -> Wrapper:
    """``perform_tts_inference``: one ``tts_node`` span per synthesis, with the spoken text."""
    return _inference(state, "perform_tts_inference", _start_tts_node, _finish_tts_node)


def _start_llm_node(
    recorder: SessionRecorder, kwargs: dict[str, Any]
) -> tuple[Node, dict[str, Any]]:
    options = recorder.options
    speech = compat.current_speech()
    model = kwargs.get("model")
    provider = kwargs.get("provider")
    if model is None and provider is None:
        model, provider = compat.model_and_provider(recorder.component("llm"))
    values: dict[str, AttributeValue] = {
        attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_CHAT,
        attr.LANGFUSE_OBSERVATION_TYPE: attr.LANGFUSE_TYPE_GENERATION,
    }
    if model:
        values[attr.GEN_AI_REQUEST_MODEL] = model
        if options.openinference:
            values[attr.LLM_MODEL_NAME] = model
    if provider:
        values[attr.GEN_AI_PROVIDER_NAME] = provider
        if options.openinference:
            values[attr.LLM_PROVIDER] = provider
    if options.openinference:
        values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_LLM
    parameters = compat.model_parameters(kwargs.get("model_settings"))
    if parameters and options.langfuse:
        values[attr.LANGFUSE_MODEL_PARAMETERS] = content.to_json(parameters, options)
    chat_ctx = kwargs.get("chat_ctx")
    items = getattr(chat_ctx, "items", None)
    if isinstance(items, list):
        # the prompt goes in with the start attributes: no second set_attributes call
        values.update(_prompt_values(recorder, items))
    node = recorder.start_node(attr.SPAN_LLM_NODE, speech, values)
    if isinstance(items, list):
        span_id = format(node.span.get_span_context().span_id, "016x")
        recorder.prompt_cursor.advance(items, span_id)
    return node, kwargs


def _prompt_values(recorder: SessionRecorder, items: list[Any]) -> dict[str, AttributeValue]:
    options = recorder.options
    cursor = recorder.prompt_cursor
    values: dict[str, AttributeValue] = {attr.LK_LLM_PROMPT_ITEMS: len(items)}
    if options.capture_content:
        new_items, continues = cursor.new_items(items, options.prompt_window)
        messages = [m for m in map(content.chat_item_message, new_items) if m is not None]
        values[attr.LK_LLM_PROMPT_CAPTURED_ITEMS] = len(messages)
        if continues and cursor.last_span_id:
            values[attr.LK_LLM_PROMPT_CONTINUES] = cursor.last_span_id
        prompt = content.to_json(messages, options)
        if options.langfuse:
            values[attr.LANGFUSE_OBSERVATION_INPUT] = prompt
        if options.openinference:
            values[attr.INPUT_VALUE] = prompt
            values[attr.INPUT_MIME_TYPE] = attr.MIME_JSON
        if options.genai:
            values[attr.GEN_AI_INPUT_MESSAGES] = prompt
    return values


def _finish_llm_node(recorder: SessionRecorder, node: Node, data: Any, task: Any) -> None:
    options = recorder.options
    error = _task_error(task)
    values: dict[str, AttributeValue] = {}
    ttft = getattr(data, "ttft", None)
    if isinstance(ttft, (int, float)) and ttft >= 0:
        first_token = datetime.fromtimestamp(node.started_at + ttft, tz=timezone.utc)
        values[attr.LANGFUSE_COMPLETION_START_TIME] = first_token.isoformat()
    calls = list(getattr(data, "generated_functions", None) or ())
    finish = "cancelled" if task.cancelled() else ("tool_calls" if calls else "stop")
    if options.genai:
        values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = [finish]
    if options.capture_content:
        text = str(getattr(data, "generated_text", "") or "")
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = content.tool_call_messages(calls)
            values[attr.LK_LLM_OUTPUT_TOOL_CALLS] = content.to_json(message["tool_calls"], options)
        values[attr.LK_LLM_OUTPUT_TEXT] = content.limit(text, options)
        output = content.to_json(message, options)
        if options.langfuse:
            values[attr.LANGFUSE_OBSERVATION_OUTPUT] = output
        if options.openinference:
            values[attr.OUTPUT_VALUE] = output
            values[attr.OUTPUT_MIME_TYPE] = attr.MIME_JSON
        if options.genai:
            values[attr.GEN_AI_OUTPUT_MESSAGES] = output
    recorder.end_node(node, values, error, cancelled=task.cancelled())


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
    if recorder.options.capture_content and isinstance(kwargs.get("input"), AsyncIterable):
        text = []
        kwargs = {**kwargs, "input": _tee_text(kwargs["input"], text)}
    speech = compat.current_speech()
    model = kwargs.get("model")
    provider = kwargs.get("provider")
    if model is None and provider is None:
        model, provider = compat.model_and_provider(recorder.component("tts"))
    values: dict[str, AttributeValue] = {}
    if model:
        values[attr.LK_TTS_MODEL] = model
    if provider:
        values[attr.LK_TTS_PROVIDER] = provider
    recorder.mark_plain(values)
    node = recorder.start_node(attr.SPAN_TTS_NODE, speech, values)
    node.text = text
    return node, kwargs


def _finish_tts_node(recorder: SessionRecorder, node: Node, data: Any, task: Any) -> None:
    values: dict[str, AttributeValue] = {}
    if node.text is not None:
        text = content.limit("".join(node.text), recorder.options)
        values[attr.LK_TTS_TEXT] = text
        duration = node.metrics.value("audio_duration") if node.metrics is not None else None
        spoken = f"[audio {duration:.2f}s]" if isinstance(duration, float) else "[audio]"
        recorder.add_io(values, text, spoken)
    recorder.end_node(node, values, _task_error(task), cancelled=task.cancelled())


def tool_executions(state: State) -> Wrapper:
    """``perform_tool_executions``: one ``function_tool`` span per tool call, current in it."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        session = kwargs.get("session")
        recorder = recorder_of(session)
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
        options = self.recorder.options
        name = str(getattr(function_call, "name", ""))
        call_id = str(getattr(function_call, "call_id", ""))
        values: dict[str, AttributeValue] = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: name,
            attr.GEN_AI_TOOL_CALL_ID: call_id,
            attr.LANGFUSE_OBSERVATION_TYPE: attr.LANGFUSE_TYPE_TOOL,
        }
        if options.genai:
            values[attr.GEN_AI_TOOL_TYPE] = "function"
        if options.openinference:
            values[attr.OPENINFERENCE_SPAN_KIND] = attr.KIND_TOOL
            values[attr.TOOL_NAME] = name
            values[attr.TOOL_CALL_ID] = call_id
        node = self.recorder.start_node(attr.SPAN_FUNCTION_TOOL, self.speech, values)
        if options.capture_content:
            node.text = [content.limit(str(getattr(function_call, "arguments", "") or ""), options)]
        self.open[call_id] = node
        return node

    def completed(self, output: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            self._end(output)
        except Exception:
            self.state.report("tool_execution_completed_cb")
        return self.original_completed(output, *args, **kwargs)

    def _end(self, output: Any) -> None:
        call = getattr(output, "fnc_call", None)
        key = str(getattr(call, "call_id", ""))
        node = self.open.pop(key, None)
        if node is None:
            if call is None:
                return
            # an unknown tool or unparsable arguments: LiveKit reports it without a start
            self._start(call)
            node = self.open.pop(key)
        options = self.recorder.options
        call_output = getattr(output, "fnc_call_out", None)
        is_error = bool(getattr(call_output, "is_error", False))
        error = getattr(output, "raw_exception", None)
        values: dict[str, AttributeValue] = {attr.LK_TOOL_IS_ERROR: is_error}
        if options.capture_content:
            arguments = node.text[0] if node.text else ""
            result = content.limit(str(getattr(call_output, "output", "") or ""), options)
            values[attr.LK_TOOL_ARGUMENTS] = arguments
            values[attr.LK_TOOL_RESULT] = result
            self.recorder.add_io(values, arguments, result, json_io=False)
            if options.genai:
                values[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
                values[attr.GEN_AI_TOOL_CALL_RESULT] = result
            if options.openinference:
                values[attr.TOOL_PARAMETERS] = arguments
        if not isinstance(error, BaseException) and is_error:
            error = RuntimeError("the tool reported an error")
        self.recorder.end_node(node, values, error if isinstance(error, BaseException) else None)


# -- helpers --------------------------------------------------------------------------------
def _task_error(task: Any) -> BaseException | None:
    if task.cancelled():
        return None
    error = task.exception()
    return error if isinstance(error, BaseException) else None


def _guarded_done(state: State, finish: Callable[..., None], *args: Any) -> None:
    try:
        finish(*args)
    except Exception:
        state.report(getattr(finish, "__name__", "done callback"))


def _safely(state: State, hook: str, call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except Exception:
        state.report(hook)
