"""Hooks that hand audio frames to the session's audio capture: the user's as the agent
receives them, the agent's as they are handed to the audio output (option ``audio``)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from .. import compat
from ..recording.recorder import current_recorder, recorder_of
from .guard import Hook, State, Wrapper


def user_audio(state: State, hook: Hook) -> Wrapper:
    """``AgentActivity.push_audio``: each frame of the user's audio."""

    def note(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        recorder = recorder_of(compat.activity_session(instance))
        if recorder is None or recorder.audio is None:
            return
        frame = args[0] if args else kwargs.get("frame")
        if frame is not None:
            recorder.audio.user_frame(frame)

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        state.guard.call(hook, note, instance, args, kwargs)
        return wrapped(*args, **kwargs)

    return wrapper


def agent_audio(state: State, hook: Hook) -> Wrapper:
    """``perform_audio_forwarding``: each frame of a reply handed to the audio output."""

    def tap(kwargs: dict[str, Any]) -> dict[str, Any] | None:
        recorder = current_recorder()
        audio = recorder.audio if recorder is not None else None
        frames = kwargs.get("tts_output")
        if recorder is None or audio is None or not isinstance(frames, AsyncIterable):
            return None
        turn = recorder.replies.turn_for(compat.current_speech())
        if turn is None:
            return None
        if turn.audio is None:
            turn.audio = audio.agent_clip()
        output, clip = kwargs.get("audio_output"), turn.audio
        first = [True]

        def each(frame: Any) -> None:
            audio.agent_frame(clip, frame, first[0], output)
            first[0] = False

        return {**kwargs, "tts_output": _each(frames, state.guard.callback(each))}

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        tapped = state.guard.call(hook, tap, kwargs)
        return wrapped(*args, **(tapped if tapped is not None else kwargs))

    return wrapper


async def _each(items: AsyncIterable[Any], note: Callable[[Any], None]) -> AsyncIterator[Any]:
    """Pass items through unchanged, calling ``note(item)`` for each one."""
    iterator = items.__aiter__()
    try:
        async for item in iterator:
            note(item)
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
