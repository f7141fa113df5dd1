"""The hook that hands the user's audio frames, as the agent receives them, to the
session's audio capture (option ``audio``). A reply's frames reach it through the
``perform_audio_forwarding`` hook of ``hooks/replies.py``, which already sees each one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import compat
from ..recording.recorder import recorder_of
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
        # every frame of the call passes here, silence included: nothing more without audio
        if state.options.audio:
            state.guard.call(hook, note, instance, args, kwargs)
        return wrapped(*args, **kwargs)

    return wrapper
