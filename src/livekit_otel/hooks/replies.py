"""Hooks of the agent's replies beyond their inference: a realtime model's responses and the
audio handed to the output. These talk to the session's ``Replies`` only (LLM, TTS and tool
calls are in :mod:`.inference`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import Any

from .. import compat
from ..recording.recorder import current_recorder, recorder_of
from ..recording.replies import Replies
from .guard import Hook, State, Wrapper
from .streams import on_first


def _current_replies() -> Replies | None:
    recorder = current_recorder()
    return recorder.replies if recorder is not None else None


def _replies_of(session: Any) -> Replies | None:
    recorder = recorder_of(session)
    return recorder.replies if recorder is not None else None


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
        handed_over, forwarded = noters
        each = state.guard.callback(forwarded) if forwarded is not None else None
        return {**kwargs, "tts_output": on_first(frames, state.guard.callback(handed_over), each)}

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tapped = state.guard.call(hook, tap, kwargs)
        return wrapped(*args, **(tapped if tapped is not None else kwargs))

    return wrapper
