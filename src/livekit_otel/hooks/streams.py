"""Stream taps: pass a LiveKit stream through unchanged, noting what goes by.

Also the hook on text reaching a synthesizer, which dates the first text of a reply.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from .. import compat
from ..recording.recorder import current_recorder
from ..recording.spans import now
from .guard import Hook, State, Wrapper

_NOTHING = object()


def tts_request(state: State, hook: Hook) -> Wrapper:
    """``ChunkedStream.__init__`` / ``SynthesizeStream.push_text``: text reaches a synthesizer."""

    # a streaming synthesizer gets a reply's text token by token; only the first piece
    # of each reply's text matters, so a stream is noted once per speech handle
    noted: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def note(instance: Any) -> None:
        speech = compat.current_speech()
        try:
            if noted.get(instance, _NOTHING) is speech:
                return
            noted[instance] = speech
        except TypeError:  # a stream that cannot be weakly referenced: noted every time
            pass
        if compat.sends_text_to_synthesis(instance):
            recorder = current_recorder()
            if recorder is not None:
                recorder.replies.text_sent(speech, now())

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        state.guard.call(hook, note, instance)
        return wrapped(*args, **kwargs)

    return wrapper


def on_first(
    items: AsyncIterable[Any],
    note: Callable[[float], None],
    each: Callable[[Any], None] | None = None,
) -> AsyncIterator[Any]:
    """Pass items through unchanged, calling ``note(time)`` as the first one goes by (and
    ``each(item)`` for every one)."""
    return _Tap(items.__aiter__(), note, each)


class _Tap:
    """The iterator :func:`on_first` returns.

    A plain iterator rather than an async generator: once the first item has gone by and
    no ``each`` is asked for, ``__anext__`` hands out the stream's own awaitable, so the
    rest of a stream (dozens of audio frames a reply) costs one method call an item. A
    consumer that stops early drops the tap and LiveKit's stream is finalized as if it
    were iterated directly; ``aclose`` closes it explicitly.
    """

    __slots__ = ("_each", "_iterator", "_note")

    def __init__(
        self,
        iterator: AsyncIterator[Any],
        note: Callable[[float], None] | None,
        each: Callable[[Any], None] | None,
    ) -> None:
        self._iterator = iterator
        self._note = note
        self._each = each

    def __aiter__(self) -> _Tap:
        return self

    def __anext__(self) -> Awaitable[Any]:
        if self._note is None and self._each is None:
            return self._iterator.__anext__()
        return self._next()

    async def _next(self) -> Any:
        item = await self._iterator.__anext__()
        note = self._note
        if note is not None:
            self._note = None
            note(now())
        if self._each is not None:
            self._each(item)
        return item

    async def aclose(self) -> None:
        """Close the stream underneath."""
        close = getattr(self._iterator, "aclose", None)
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
