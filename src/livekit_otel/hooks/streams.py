"""Stream taps: pass a LiveKit stream through unchanged, noting what goes by.

Also the hook on text reaching a synthesizer, which dates the first text of a reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from .. import compat
from ..recording.recorder import current_recorder
from ..recording.spans import now
from .guard import Hook, State, Wrapper


def tts_request(state: State, hook: Hook) -> Wrapper:
    """``ChunkedStream.__init__`` / ``SynthesizeStream.push_text``: text reaches a synthesizer."""

    def note(instance: Any) -> None:
        if compat.sends_text_to_synthesis(instance):
            recorder = current_recorder()
            if recorder is not None:
                recorder.replies.text_sent(compat.current_speech(), now())

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        state.guard.call(hook, note, instance)
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
                note(now())
            if each is not None:
                each(item)
            yield item
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def tee_text(source: AsyncIterable[str], sink: list[str]) -> AsyncIterator[str]:
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
