"""Hooks of the session itself: its start, its close and every event it emits.

These talk to the session's recorder (``recording.recorder.SessionRecorder``) only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

from .. import compat
from ..recording.recorder import RECORDED_EVENTS, SessionRecorder, attach_recorder, recorder_of
from ..recording.registry import register_flush_on_shutdown
from .guard import Hook, State, Wrapper


def start(state: State, hook: Hook) -> Wrapper:
    """``AgentSession.start``: open ``agent_session`` and ``session_start``."""

    def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if recorder_of(instance) is not None or compat.session_already_started(instance):
            return None
        provider = state.provider or trace.get_tracer_provider()
        if isinstance(provider, SDKTracerProvider):
            # a provider built outside the job (at import time) still gets flushed at its end
            register_flush_on_shutdown(provider)
        agent = args[0] if args else kwargs.get("agent")
        recorder = SessionRecorder(
            state.tracer,
            state.options,
            instance,
            agent,
            state.instruments,
            state.guard.callback,
        )
        attach_recorder(instance, recorder)
        return recorder, otel_context.attach(recorder.start_context())

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        opened = state.guard.call(hook, begin, instance, args, kwargs)
        recorder = opened[0] if opened is not None else None
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            if recorder is not None:
                state.guard.call(hook, recorder.start_failed, error)
            raise
        finally:
            if opened is not None:
                state.guard.call(hook, _detach_if_current, opened[1], opened[0])
        if recorder is not None:
            state.guard.call(hook, recorder.session_started, None)
        return result

    return wrapper


def _detach_if_current(token: Any, recorder: SessionRecorder) -> None:
    # LiveKit attaches its own session context inside start() and never detaches it; when it
    # did, leave both in place rather than unwind LiveKit's
    if otel_context.get_current() is recorder.start_context():
        otel_context.detach(token)


def close(state: State, hook: Hook) -> Wrapper:
    """``AgentSession._aclose_impl``: ``session_close``, then end everything still open."""

    def begin(recorder: SessionRecorder, kwargs: dict[str, Any]) -> Any:
        close_context = recorder.close_started(kwargs.get("reason"), kwargs.get("error"))
        return otel_context.attach(close_context)

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        recorder = state.guard.call(hook, _running_recorder, instance)
        if recorder is None:
            return await wrapped(*args, **kwargs)
        # a second close while the first runs finds the session closed under LiveKit's
        # lock: only the first one ends the trace
        first = recorder.close_span is None
        token = state.guard.call(hook, begin, recorder, kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            if first:
                state.guard.call(hook, recorder.close_finished, error)
            raise
        finally:
            if token is not None:
                state.guard.call(hook, otel_context.detach, token)
        if first:
            state.guard.call(hook, recorder.close_finished, None)
        return result

    return wrapper


def _running_recorder(session: Any) -> SessionRecorder | None:
    recorder = recorder_of(session)
    return recorder if recorder is not None and compat.session_running(session) else None


def emit(state: State, hook: Hook) -> Wrapper:
    """``AgentSession.emit``: every session event, LiveKit metrics included."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if len(args) >= 2 and type(args[0]) is str and args[0] in RECORDED_EVENTS:
            recorder = recorder_of(instance)
            if recorder is not None:
                state.guard.call(hook, recorder.on_event, args[0], args[1])
        return wrapped(*args, **kwargs)

    return wrapper
