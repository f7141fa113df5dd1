"""Hooks that feed the user-turn machine, whatever feature they serve.

LiveKit's end-of-turn commit, the VAD's end of speech, and a realtime model's server-side
speech and transcript events. These talk to the session's ``UserTurns`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import compat
from ..recording.recorder import recorder_of
from ..recording.spans import now
from ..recording.user_turns import COMMITTING_TURN, UserTurns, mark_committing
from .guard import Hook, State, Wrapper


def _user_turns(activity: Any) -> UserTurns | None:
    recorder = recorder_of(compat.activity_session(activity))
    return recorder.user_turns if recorder is not None else None


def end_of_turn(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity.on_end_of_turn``: the moment LiveKit commits the user's turn."""

    def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        turns = _user_turns(instance)
        if turns is None:
            return None
        info = args[0] if args else kwargs.get("info")
        turn = turns.begin_commit(compat.end_of_turn_transcript(info))
        return turns, turn, mark_committing(turn)

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        committing = state.guard.call(hook, begin, instance, args, kwargs)
        if committing is None:
            return wrapped(*args, **kwargs)
        turns, turn, token = committing
        result: Any = False
        try:
            result = wrapped(*args, **kwargs)
        finally:
            COMMITTING_TURN.reset(token)
            state.guard.call(hook, turns.finish_commit, turn, result is not False)
        return result

    return wrapper


def end_of_speech(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity.on_end_of_speech``: the VAD dates the end of the user's speech."""

    def note(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        turns = _user_turns(instance)
        if turns is not None:
            event = args[0] if args else kwargs.get("ev")
            turns.speech_ended(compat.vad_speech_end(event, now()))

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        state.guard.call(hook, note, instance, args, kwargs)
        return wrapped(*args, **kwargs)

    return wrapper


# -- a realtime model's own turn detection ---------------------------------------------------
def realtime_speech_started(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity._on_input_speech_started``: the model's VAD heard the user start."""
    return _realtime_user_event(state, hook, _speech_started)


def realtime_speech_stopped(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity._on_input_speech_stopped``: the model's VAD ended the user's turn."""
    return _realtime_user_event(state, hook, _speech_stopped)


def realtime_transcript(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity._on_input_audio_transcription_completed``: the user's words, maybe late."""
    return _realtime_user_event(state, hook, _transcript)


def _speech_started(turns: UserTurns, activity: Any, event: Any) -> bool:
    turns.user_speaking(now())
    return False


def _speech_stopped(turns: UserTurns, activity: Any, event: Any) -> bool:
    model = compat.session_component(compat.activity_session(activity), "llm")
    turns.server_committed(now(), compat.realtime_silence_window(model))
    return False


def _transcript(turns: UserTurns, activity: Any, event: Any) -> bool:
    text, final, started_at = compat.realtime_transcript(event)
    if not (final and text):
        return False
    turns.server_transcript(text, started_at, now())
    turns.handling_transcript(True)
    return True


def _realtime_user_event(
    state: State, hook: Hook, note: Callable[[UserTurns, Any, Any], bool]
) -> Wrapper:
    """A realtime session's user event: noted before LiveKit handles it."""

    def noted(instance: Any, args: tuple[Any, ...]) -> UserTurns | None:
        turns = _user_turns(instance)
        if turns is not None and note(turns, instance, args[0] if args else None):
            return turns  # relaying its transcript: LiveKit's session events must not count it
        return None

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        relaying = state.guard.call(hook, noted, instance, args)
        try:
            return wrapped(*args, **kwargs)
        finally:
            if relaying is not None:
                state.guard.call(hook, relaying.handling_transcript, False)

    return wrapper
