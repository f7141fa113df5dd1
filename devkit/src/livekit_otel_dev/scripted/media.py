"""Scripted session I/O: an audio input fed by the driver, a fast audio output, a text output.

`ScriptedAudioOutput` records each segment it played as a `PlayedSegment`: audio pushed
and played (an interrupted segment played `elapsed x playback_speed`, capped at what was
pushed: the position reported to LiveKit in `playback_finished`), the reply it belongs
to (`speech_id`, from LiveKit's speech context at the first frame), when its first frame
was handed over (`first_frame_at`, `time.time()` on entry to `capture_frame`) and when
it finished. With a `timeline` it also stamps `output.first_frame` (the first frame of
each segment, in the reply's speech: "the first audio frame handed to the session's
output" when this output is the top of the chain) and `output.segment_end`.
"""

from __future__ import annotations

import array
import asyncio
import inspect
import math
import time
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents.voice import io

from .timeline import ScriptTimeline, current_speech_id

__all__ = [
    "PlayedSegment",
    "ScriptedAudioInput",
    "ScriptedAudioOutput",
    "ScriptedTextOutput",
    "SegmentHold",
    "silence_frame",
    "tone_frames",
    "tone_pcm",
]


def silence_frame(duration: float = 0.02, sample_rate: int = 16000) -> rtc.AudioFrame:
    """A mono 16-bit frame of silence."""
    samples = int(sample_rate * duration)
    return rtc.AudioFrame(bytes(2 * samples), sample_rate, 1, samples)


def tone_pcm(frequency: float, duration: float, sample_rate: int = 16000) -> bytes:
    """A mono 16-bit sine of ``frequency`` Hz, ``duration`` seconds long (a test's known
    signal: each utterance and reply can have its own)."""
    count = round(sample_rate * duration)
    phase = 2 * math.pi * frequency / sample_rate
    return array.array("h", (int(8000 * math.sin(phase * n)) for n in range(count))).tobytes()


def tone_frames(
    frequency: float, duration: float, sample_rate: int = 16000, frame: float = 0.02
) -> list[rtc.AudioFrame]:
    """``tone_pcm`` cut into frames of ``frame`` seconds (the last one may be shorter)."""
    pcm = tone_pcm(frequency, duration, sample_rate)
    step = 2 * int(sample_rate * frame)
    return [
        rtc.AudioFrame(pcm[i : i + step], sample_rate, 1, len(pcm[i : i + step]) // 2)
        for i in range(0, len(pcm), step)
    ]


class ScriptedAudioInput(io.AudioInput):
    """The user's microphone: yields the frames the driver pushes, until closed."""

    def __init__(self, *, label: str = "scripted-audio-in") -> None:
        super().__init__(label=label)
        self._queue: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._closed = False
        self._waiting = False
        self._watched: dict[int, float | None] = {}

    def watch(self, frame: rtc.AudioFrame) -> None:
        """Note when LiveKit takes this frame (see `taken_at`)."""
        self._watched[id(frame)] = None

    def taken_at(self, frame: rtc.AudioFrame) -> float | None:
        """`time.time()` when LiveKit took a watched frame (the agent received it then)."""
        return self._watched.pop(id(frame), None)

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        """Queue one frame for LiveKit to read."""
        if not self._closed:
            self._queue.put_nowait(frame)

    def close(self) -> None:
        """End the input: LiveKit's reader stops after the queued frames."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def drained(self) -> None:
        """Wait until LiveKit has taken every queued frame (and handed it to the agent)."""
        while not (self._queue.empty() and self._waiting) and not self._closed:
            await asyncio.sleep(0.001)

    async def __anext__(self) -> rtc.AudioFrame:
        self._waiting = True
        frame = await self._queue.get()
        self._waiting = False
        if frame is None:
            raise StopAsyncIteration
        if id(frame) in self._watched:
            self._watched[id(frame)] = time.time()
        return frame


@dataclass
class PlayedSegment:
    """One segment the audio output played: how much audio it got and how much it played."""

    pushed: float
    played: float
    interrupted: bool
    speech_id: str | None = None
    """The reply the segment belongs to (LiveKit's speech context at its first frame)."""
    first_frame_at: float | None = None
    """`time.time()` when its first frame was handed to `capture_frame`."""
    finished_at: float | None = None
    """`time.time()` when it finished (played out, or cleared)."""


class SegmentHold:
    """A hold on the next audio segment: it plays until cleared or released.

    `captured` resolves once the segment is flushed (all its audio synthesized and
    captured); its playhead starts from there. `finished` resolves once it stops
    (cleared or released).
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.captured: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()


@dataclass
class _Segment:
    started_at: float
    hold: SegmentHold | None
    held: bool
    speech_id: str | None = None
    first_frame_at: float | None = None
    pushed: float = 0.0
    flushed: bool = False
    done: bool = False
    timer: asyncio.TimerHandle | None = None


_OUTPUT_PARAMS = inspect.signature(io.AudioOutput.__init__).parameters


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ScriptedAudioOutput(io.AudioOutput):
    """The agent's speaker: "plays" each segment `playback_speed` times faster than real time.

    A segment starts playing at its first frame and finishes (`playback_finished`,
    not interrupted) once its audio has played at that speed after `flush()`;
    `clear_buffer()` stops it at once and reports it interrupted with the position
    reached. `hold_next_segment()` makes the next segment play until it is cleared
    or `release()` is called, so a test can interrupt it at a chosen moment.
    """

    def __init__(
        self,
        *,
        playback_speed: float = 100.0,
        label: str = "scripted-audio-out",
        timeline: ScriptTimeline | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"label": label}
        if "capabilities" in _OUTPUT_PARAMS:  # absent before pause support
            kwargs["capabilities"] = io.AudioOutputCapabilities(pause=False)
        super().__init__(**kwargs)
        self.playback_speed = playback_speed
        self.timeline = timeline
        self.segments: list[PlayedSegment] = []
        """Every finished segment, in order."""
        self._segment: _Segment | None = None
        self._next_hold: SegmentHold | None = None

    def hold_next_segment(self) -> SegmentHold:
        """Hold the next segment that starts until it is cleared or released."""
        self._next_hold = SegmentHold()
        return self._next_hold

    def release(self) -> None:
        """Let the held segment finish playing normally, and drop a pending hold."""
        self._next_hold = None
        seg = self._segment
        if seg is not None and seg.held:
            seg.held = False
            if seg.flushed and not seg.done:
                self._schedule_finish(seg)

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        """Take one frame of the current segment, starting playback on the first."""
        handed_at = time.time() if self._segment is None else 0.0
        await super().capture_frame(frame)
        seg = self._segment
        if seg is None:
            started_at = asyncio.get_running_loop().time()
            hold = self._next_hold
            speech_id = current_speech_id()
            seg = self._segment = _Segment(
                started_at,
                hold,
                held=hold is not None,
                speech_id=speech_id,
                first_frame_at=handed_at,
            )
            self._next_hold = None
            if self.timeline is not None:
                self.timeline.stamp("output.first_frame", at=handed_at, speech_id=speech_id)
            if hasattr(self, "on_playback_started"):  # 1.5+: it sets the reply's first frame
                self.on_playback_started(created_at=time.time())
        if not seg.done:
            seg.pushed += frame.duration

    def flush(self) -> None:
        """Mark the end of the current segment: it finishes once played."""
        super().flush()
        seg = self._segment
        if seg is None or seg.flushed:
            return
        seg.flushed = True
        if seg.done:
            self._segment = None
        elif not seg.held:
            self._schedule_finish(seg)
        elif seg.hold is not None:
            seg.started_at = asyncio.get_running_loop().time()  # its playhead starts now
            _resolve(seg.hold.captured)

    def clear_buffer(self) -> None:
        """Stop the current segment now and report it interrupted."""
        seg = self._segment
        if seg is not None and not seg.done:
            self._finish(seg, interrupted=True)

    def _schedule_finish(self, seg: _Segment) -> None:
        loop = asyncio.get_running_loop()
        seg.timer = loop.call_at(
            seg.started_at + seg.pushed / self.playback_speed, self._finish, seg, False
        )

    def _finish(self, seg: _Segment, interrupted: bool) -> None:
        if seg.done:
            return
        seg.done = True
        if seg.timer is not None:
            seg.timer.cancel()
        elapsed = asyncio.get_running_loop().time() - seg.started_at
        played = min(seg.pushed, elapsed * self.playback_speed) if interrupted else seg.pushed
        if seg.flushed:
            self._segment = None
        finished_at = time.time()
        self.segments.append(
            PlayedSegment(
                seg.pushed,
                played,
                interrupted,
                speech_id=seg.speech_id,
                first_frame_at=seg.first_frame_at,
                finished_at=finished_at,
            )
        )
        if self.timeline is not None:
            self.timeline.stamp(
                "output.segment_end",
                at=finished_at,
                speech_id=seg.speech_id,
                pushed=seg.pushed,
                played=played,
                interrupted=interrupted,
            )
        self.on_playback_finished(playback_position=played, interrupted=interrupted)
        if seg.hold is not None:
            _resolve(seg.hold.finished)


class ScriptedTextOutput(io.TextOutput):
    """The agent's transcription output: records each finished text segment."""

    def __init__(self, *, label: str = "scripted-text-out") -> None:
        super().__init__(label=label, next_in_chain=None)
        self.segments: list[str] = []
        """Every flushed text segment, in order."""
        self._current: list[str] = []

    async def capture_text(self, text: str) -> None:
        """Append text to the current segment."""
        self._current.append(text)

    def flush(self) -> None:
        """Close the current segment."""
        if self._current:
            self.segments.append("".join(self._current))
            self._current = []
