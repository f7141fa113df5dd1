"""Wrappers of a realtime model's responses and of its server-side user turn events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .. import compat
from ..recording.recorder import SessionRecorder
from .guard import State, Wrapper, recorder_of, safely


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
                prompt = compat.realtime_prompt(instance, kwargs.get("instructions"))
                response = recorder.replies.realtime_started(speech, response_id, user, prompt)
            except Exception:
                state.report(hook)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            if recorder is not None and response is not None:
                safely(state, hook, recorder.replies.realtime.returned, response)

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
    silence = compat.realtime_silence_window(recorder.replies.component("llm"))
    recorder.user_turns.server_committed(time.time(), silence)
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
