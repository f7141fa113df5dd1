"""The latency a caller hears: the moments of one reply, and the parts they make.

Perceived latency runs from the end of the user's speech (as the VAD dates it) to the
first audio frame of the reply handed to the session's audio output. Its parts are
consecutive intervals on that timeline, each charged to the earliest stage still
unfinished, so work done ahead of time (preemptive generation before the commit) costs
nothing and the parts always add up to the total.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ..mapping.facts import Latency
from .spans import Protect


class Timeline:
    """The moments of one reply, each the first of its kind (``time.time()`` values)."""

    __slots__ = (
        "__weakref__",
        "committed_at",
        "first_audio_at",
        "first_frame_at",
        "first_text_at",
        "forwarded",
        "hook_ended_at",
        "played",
        "segments",
        "speech_ended_at",
        "tools",
    )

    def __init__(self) -> None:
        self.speech_ended_at: float | None = None
        self.committed_at: float | None = None
        self.hook_ended_at: float | None = None
        self.first_text_at: float | None = None
        self.first_audio_at: float | None = None
        self.first_frame_at: float | None = None
        self.tools: list[tuple[float, float]] = []
        self.played = 0.0
        self.segments = 0
        self.forwarded = 0.0  # seconds of this reply's audio handed to the audio output

    def user_turn(self, speech_ended_at: float | None, committed_at: float | None) -> None:
        """The user turn this reply answers: when the speech ended and the turn was committed."""
        self.speech_ended_at = speech_ended_at
        self.committed_at = committed_at

    def text_sent(self, at: float) -> None:
        """Text of this reply was sent to speech synthesis."""
        if self.first_text_at is None:
            self.first_text_at = at

    def audio_synthesized(self, at: float) -> None:
        """Speech synthesis produced audio for this reply."""
        if self.first_audio_at is None:
            self.first_audio_at = at

    def frame_handed_over(self, at: float) -> None:
        """A frame of this reply was handed to the session's audio output."""
        if self.first_frame_at is None:
            self.first_frame_at = at

    def frame_forwarded(self, frame: Any) -> None:
        """A frame of this reply's audio was handed to the session's audio output."""
        duration = getattr(frame, "duration", None)
        if isinstance(duration, (int, float)):
            self.forwarded += duration

    def latency(self) -> Latency | None:
        """The perceived latency and its parts, or ``None`` when the reply answered no
        user speech or was never heard."""
        start, heard = self.speech_ended_at, self.first_frame_at
        if start is None or heard is None or self.committed_at is None:
            return None
        committed = max(start, self.committed_at)
        hook_ended = max(committed, self.hook_ended_at or committed)
        text = max(hook_ended, self.first_text_at or self.first_audio_at or heard)
        audio = max(text, self.first_audio_at or text)
        frame = max(audio, heard)
        tools = _overlap(self.tools, hook_ended, text)
        return Latency(
            total=frame - start,
            end_of_turn=committed - start,
            on_user_turn_completed=hook_ended - committed,
            llm=(text - hook_ended) - tools,
            tools=tools,
            tts=audio - text,
            playout=frame - audio,
        )


def _overlap(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` covered by the union of ``intervals``."""
    covered = 0.0
    reached = start
    for low, high in sorted(intervals):
        low, high = max(low, reached), min(high, end)
        if high > low:
            covered += high - low
            reached = high
    return covered


class Playback:
    """Ties each ``playback_finished`` of an audio output to the reply whose segment it ends.

    Segments of one output play one after another, so a queue per output is enough; the
    listener holds only weak references, to the output and to the replies.
    """

    def __init__(self, protect: Protect) -> None:
        self._protect = protect
        self._queues: weakref.WeakKeyDictionary[Any, deque[weakref.ref[Timeline]]] = (
            weakref.WeakKeyDictionary()
        )
        self._listeners: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []

    def segment_started(self, output: Any, timeline: Timeline) -> None:
        """A reply handed the first frame of a segment to ``output``."""
        timeline.segments += 1
        queue = self._queues.get(output)
        if queue is None:
            queue = self._queues[output] = deque()
            self._listen(output, queue)
        queue.append(weakref.ref(timeline))

    def _listen(self, output: Any, queue: deque[weakref.ref[Timeline]]) -> None:
        def playback_finished(event: Any) -> None:
            if not queue:
                return
            timeline = queue.popleft()()
            position = getattr(event, "playback_position", None)
            if timeline is not None and isinstance(position, (int, float)) and position > 0:
                timeline.played += float(position)

        listener = self._protect(playback_finished)
        output.on("playback_finished", listener)
        self._listeners.append((weakref.ref(output), listener))

    def close(self) -> None:
        """Stop listening to every output (the session closed)."""
        for output_ref, listener in self._listeners:
            output = output_ref()
            if output is not None:
                output.off("playback_finished", listener)
        self._listeners.clear()
