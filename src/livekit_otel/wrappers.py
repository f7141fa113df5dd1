"""Wrapper factories for the hooks in the instrumentor's wrap table.

Every wrapper is thin: it hands what it sees to the session's recorder and calls the
wrapped function exactly once, unchanged. A failure of livekit-otel itself is caught,
logged once per hook, and never reaches the agent.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer

from . import compat
from .config import Options
from .facts import LlmRequest, ToolCall, ToolResult, TtsRequest
from .latency import Timeline
from .meters import Instruments
from .recorder import SessionRecorder
from .replies import ACTIVE_NODE, Node
from .user_turns import COMMITTING_TURN

logger = logging.getLogger("livekit_otel")

RECORDER_ATTRIBUTE = "_livekit_otel_recorder"
Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


class State:
    """What every wrapper shares: the tracer and options in force, and which hooks failed."""

    def __init__(self, tracer: Tracer, options: Options, instruments: Instruments) -> None:
        self.tracer = tracer
        self.options = options
        self.instruments = instruments
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
            if recorder_of(instance) is None and not compat.session_already_started(instance):
                if state.on_session_start is not None:
                    state.on_session_start()
                agent = args[0] if args else kwargs.get("agent")
                recorder = SessionRecorder(
                    state.tracer, state.options, instance, agent, state.instruments
                )
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
        if recorder is None or not compat.session_running(instance):
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
            turn = recorder.user_turns.begin_commit(compat.end_of_turn_transcript(info))
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
            _safely(
                state,
                "AgentActivity.on_end_of_turn",
                recorder.user_turns.finish_commit,
                turn,
                accepted,
            )
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
            _safely(state, hook, recorder.replies.abandon_node, node, error)
            raise
        try:
            task, data = compat.inference_task(result)
            task.add_done_callback(
                functools.partial(_guarded_done, state, finish, recorder, node, data)
            )
        except Exception:
            state.report(hook)
            _safely(state, hook, recorder.replies.abandon_node, node)
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
    recorder.replies.llm_finished(node, reply, task.cancelled(), _task_error(task))


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
        return _on_first(frames, timeline.audio_synthesized)

    return node


async def _on_first(items: AsyncIterable[Any], note: Callable[[float], None]) -> AsyncIterator[Any]:
    """Pass items through unchanged, calling ``note(time)`` as the first one goes by."""
    iterator = items.__aiter__()
    try:
        first = True
        async for item in iterator:
            if first:
                first = False
                note(time.time())
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def _finish_tts_node(recorder: SessionRecorder, node: Node, data: Any, task: Any) -> None:
    recorder.replies.tts_finished(node, task.cancelled(), _task_error(task))


# -- measured latency --------------------------------------------------------------------
def end_of_speech(state: State) -> Wrapper:
    """``AgentActivity.on_end_of_speech``: the VAD dates the end of the user's speech."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(compat.activity_session(instance))
        if recorder is not None:
            try:
                event = args[0] if args else kwargs.get("ev")
                recorder.user_turns.speech_ended(compat.vad_speech_end(event, time.time()))
            except Exception:
                state.report("AgentActivity.on_end_of_speech")
        return wrapped(*args, **kwargs)

    return wrapper


def _current_timeline() -> Timeline | None:
    recorder = _current_recorder()
    turn = recorder.replies.turn_for(compat.current_speech()) if recorder is not None else None
    return turn.timeline if turn is not None else None


def audio_forwarding(state: State) -> Wrapper:
    """``perform_audio_forwarding``: when a reply's first frame is handed to the audio output."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            recorder = _current_recorder()
            turn = recorder.replies.turn_for(compat.current_speech()) if recorder else None
            frames, output = kwargs.get("tts_output"), kwargs.get("audio_output")
            if recorder is not None and turn is not None and isinstance(frames, AsyncIterable):
                playback, timeline = recorder.replies.playback, turn.timeline

                def handed_over(at: float) -> None:
                    timeline.frame_handed_over(at)
                    playback.segment_started(output, timeline)

                kwargs = {**kwargs, "tts_output": _on_first(frames, handed_over)}
        except Exception:
            state.report("perform_audio_forwarding")
        return wrapped(*args, **kwargs)

    return wrapper


def tts_request(state: State) -> Wrapper:
    """``ChunkedStream.__init__`` / ``SynthesizeStream.push_text``: text reaches a synthesizer."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            if compat.sends_text_to_synthesis(instance):
                timeline = _current_timeline()
                if timeline is not None:
                    timeline.text_sent(time.time())
        except Exception:
            state.report("text sent to synthesis")
        return wrapped(*args, **kwargs)

    return wrapper


# -- realtime models --------------------------------------------------------------------
def realtime_generation(state: State) -> Wrapper:
    """``AgentActivity._realtime_generation_task``: one ``realtime_response`` per response."""
    hook = "AgentActivity._realtime_generation_task"

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(compat.activity_session(instance))
        response = None
        if recorder is not None:
            try:
                response_id, user_initiated = compat.generation_response(
                    kwargs.get("generation_ev")
                )
                user = None if user_initiated else recorder.user_turns.take_server_turn()
                speech = kwargs.get("speech_handle")
                response = recorder.replies.realtime_started(speech, response_id, user)
            except Exception:
                state.report(hook)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            if recorder is not None and response is not None:
                _safely(state, hook, recorder.replies.realtime.returned, response)

    return wrapper


def realtime_speech_started(state: State) -> Wrapper:
    """``AgentActivity._on_input_speech_started``: the model's VAD heard the user start."""
    return _realtime_user_event(state, "_on_input_speech_started", _speech_started)


def realtime_speech_stopped(state: State) -> Wrapper:
    """``AgentActivity._on_input_speech_stopped``: the model's VAD ended the user's turn."""
    return _realtime_user_event(state, "_on_input_speech_stopped", _speech_stopped)


def realtime_transcript(state: State) -> Wrapper:
    """``AgentActivity._on_input_audio_transcription_completed``: the user's words, maybe late."""
    return _realtime_user_event(state, "_on_input_audio_transcription_completed", _transcript)


def _speech_started(recorder: SessionRecorder, event: Any) -> bool:
    recorder.user_turns.user_speaking(time.time())
    return False


def _speech_stopped(recorder: SessionRecorder, event: Any) -> bool:
    recorder.user_turns.server_committed(time.time())
    return False


def _transcript(recorder: SessionRecorder, event: Any) -> bool:
    text, final, started_at = compat.realtime_transcript(event)
    if not (final and text):
        return False
    recorder.user_turns.server_transcript(text, started_at, time.time())
    recorder.user_turns.handling_transcript(True)
    return True


def _realtime_user_event(
    state: State, hook: str, note: Callable[[SessionRecorder, Any], bool]
) -> Wrapper:
    """A realtime session's user event: noted before LiveKit handles it."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = recorder_of(compat.activity_session(instance))
        handled = False
        if recorder is not None:
            try:
                handled = note(recorder, args[0] if args else None)
            except Exception:
                state.report(hook)
        try:
            return wrapped(*args, **kwargs)
        finally:
            if handled and recorder is not None:
                recorder.user_turns.handling_transcript(False)

    return wrapper


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
