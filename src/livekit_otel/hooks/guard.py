"""What every wrapper shares, and the wrappers of the session and its user turns.

Every wrapper is thin: it hands what it sees to the session's recorder and calls the
wrapped function exactly once, unchanged. A failure of livekit-otel itself is caught,
logged once per hook, and never reaches the agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer

from .. import compat
from ..config import Options
from ..mapping.instruments import Instruments
from ..recording.recorder import SessionRecorder
from ..recording.user_turns import COMMITTING_TURN

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


def current_recorder() -> SessionRecorder | None:
    """The recorder of the session whose activity task is running."""
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
                safely(state, "AgentSession.start", recorder.start_failed, error)
            raise
        finally:
            if token is not None and recorder is not None:
                _detach_if_current(token, recorder)
        if recorder is not None:
            safely(state, "AgentSession.start", recorder.session_started, None)
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
        # a second close while the first runs finds the session closed under LiveKit's
        # lock: only the first one ends the trace
        first = recorder.close_span is None
        try:
            close_context = recorder.close_started(kwargs.get("reason"), kwargs.get("error"))
            token = otel_context.attach(close_context)
        except Exception:
            state.report("AgentSession._aclose_impl")
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            if first:
                safely(state, "AgentSession._aclose_impl", recorder.close_finished, error)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        if first:
            safely(state, "AgentSession._aclose_impl", recorder.close_finished, None)
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
            safely(
                state,
                "AgentActivity.on_end_of_turn",
                recorder.user_turns.finish_commit,
                turn,
                accepted,
            )
        return result

    return wrapper


# -- helpers --------------------------------------------------------------------------------
def task_error(task: Any) -> BaseException | None:
    """The exception a finished task raised, or ``None`` (also when it was cancelled)."""
    if task.cancelled():
        return None
    error = task.exception()
    return error if isinstance(error, BaseException) else None


def guarded_done(state: State, finish: Callable[..., None], *args: Any) -> None:
    """Run a done callback of ours; a failure is reported once and goes no further."""
    try:
        finish(*args)
    except Exception:
        state.report(getattr(finish, "__name__", "done callback"))


def safely(state: State, hook: str, call: Callable[..., Any], *args: Any) -> None:
    """Call one of our own functions; a failure is reported once for ``hook``, never raised."""
    try:
        call(*args)
    except Exception:
        state.report(hook)
