"""Frames held for one clip: referenced as they arrive, capped in length."""

from __future__ import annotations

from collections import deque
from typing import Any

LEAD_IN_SECONDS = 0.3
"""Audio kept before the start of the user's speech: a VAD notices speech late."""


def frame_seconds(frame: Any) -> float:
    """The duration of one LiveKit ``rtc.AudioFrame``."""
    rate = int(getattr(frame, "sample_rate", 0) or 0)
    samples = int(getattr(frame, "samples_per_channel", 0) or 0)
    return samples / rate if rate > 0 else 0.0


class Clip:
    """The frames of one utterance or reply, up to ``limit`` seconds (then ``truncated``)."""

    __slots__ = ("_end_mark", "duration", "frames", "limit", "open", "truncated")

    def __init__(self, limit: float, lead_in: list[Any] | None = None) -> None:
        self.limit = limit
        self.frames: list[Any] = []
        self.duration = 0.0
        self.truncated = False
        self.open = True
        self._end_mark: float | None = None
        for frame in lead_in or ():
            self.add(frame)

    def add(self, frame: Any) -> None:
        """Keep a reference to one more frame, unless the clip is full."""
        if not self.open:
            return
        length = frame_seconds(frame)
        if self.duration + length > self.limit + 1e-9:
            self.truncated = True
            return
        self.frames.append(frame)
        self.duration += length

    def mark_end(self) -> None:
        """The speech ended here; frames after it are cut unless it resumes."""
        self._end_mark = self.duration

    def close(self) -> None:
        """No more frames: cut back to the last end of speech, if one was marked."""
        self.open = False
        if self._end_mark is not None:
            self.cut(self._end_mark)

    def cut(self, seconds: float) -> None:
        """Keep only the first ``seconds`` of audio (the part that was played)."""
        self.open = False
        if seconds >= self.duration:
            return
        kept: list[Any] = []
        total = 0.0
        for frame in self.frames:
            if total >= seconds - 1e-9:
                break
            kept.append(frame)
            total += frame_seconds(frame)
        self.frames = kept
        self.duration = min(total, seconds)


class LeadIn:
    """The last ``seconds`` of input audio, for the start of the next clip."""

    __slots__ = ("_duration", "_frames", "seconds")

    def __init__(self, seconds: float = LEAD_IN_SECONDS) -> None:
        self.seconds = seconds
        self._frames: deque[Any] = deque()
        self._duration = 0.0

    def add(self, frame: Any) -> None:
        """Remember one frame, forgetting the oldest beyond the lead-in's length."""
        self._frames.append(frame)
        self._duration += frame_seconds(frame)
        while self._frames and self._duration - frame_seconds(self._frames[0]) >= self.seconds:
            self._duration -= frame_seconds(self._frames.popleft())

    def take(self) -> list[Any]:
        """The frames held, oldest first; the lead-in starts over empty."""
        frames = list(self._frames)
        self._frames.clear()
        self._duration = 0.0
        return frames
