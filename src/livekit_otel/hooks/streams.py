"""Wrappers that date the moments of measured latency: end of speech, text sent to speech,
the first frame handed to the audio output."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from .. import compat
from ..recording.latency import Timeline
from .guard import State, Wrapper, current_recorder, recorder_of


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
    recorder = current_recorder()
    turn = recorder.replies.turn_for(compat.current_speech()) if recorder is not None else None
    return turn.timeline if turn is not None else None


def audio_forwarding(state: State) -> Wrapper:
    """``perform_audio_forwarding``: when a reply's first frame is handed to the audio output."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            recorder = current_recorder()
            turn = recorder.replies.turn_for(compat.current_speech()) if recorder else None
            frames, output = kwargs.get("tts_output"), kwargs.get("audio_output")
            if recorder is not None and turn is not None and isinstance(frames, AsyncIterable):
                playback, timeline = recorder.replies.playback, turn.timeline

                def handed_over(at: float) -> None:
                    timeline.frame_handed_over(at)
                    playback.segment_started(output, timeline)

                forwarded = on_first(frames, handed_over, timeline.frame_forwarded)
                kwargs = {**kwargs, "tts_output": forwarded}
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


async def on_first(
    items: AsyncIterable[Any],
    note: Callable[[float], None],
    each: Callable[[Any], None] | None = None,
) -> AsyncIterator[Any]:
    """Pass items through unchanged, calling ``note(time)`` as the first one goes by (and
    ``each(item)`` for every one)."""
    iterator = items.__aiter__()
    try:
        first = True
        async for item in iterator:
            if first:
                first = False
                note(time.time())
            if each is not None:
                each(item)
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
