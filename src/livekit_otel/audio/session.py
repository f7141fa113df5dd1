"""The audio of one session: clips per turn and the call recording, captured on the loop.

On the event loop this module only keeps references to frames and does arithmetic;
everything else (encoding, storing, uploading, and ending the span that waits for its
audio) is a job for the :class:`~.worker.AudioWorker`. A span with audio ends from there,
with the end time it had, once its audio is stored; a job the worker has no room for is
dropped and the span ends at once, saying so.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .call import LazyCallRecording
from .clips import LEAD_IN_SECONDS, Clip, LeadIn, frame_seconds
from .encode import MIME_TYPE, SAMPLE_RATE, encode_clip
from .langfuse import LangfuseMedia, data_uri
from .stores import AudioStore, Placement
from .worker import AudioWorker

logger = logging.getLogger("livekit_otel")

CLIP_LIMIT_SECONDS = 30.0
"""The longest clip kept; a longer utterance or reply is cut there (``truncated``)."""
PLACE_BATCH = 16
"""Frames of the call recording handed to the worker in one job (about 160-320 ms)."""
RECORDING_WAIT_SECONDS = 2.0
"""How long the session's root span waits for the call recording (below the job-shutdown
flush bound of 3 s)."""


@dataclass(frozen=True)
class AudioSettings:
    """What audio to capture and where it goes (built from the options)."""

    turns: bool = False
    call: bool = False
    store: AudioStore | None = None
    langfuse: LangfuseMedia | None = None
    inline: bool = False
    clip_limit: float = CLIP_LIMIT_SECONDS
    lead_in: float = LEAD_IN_SECONDS
    recording_wait: float = RECORDING_WAIT_SECONDS

    @property
    def enabled(self) -> bool:
        """Whether any audio is captured."""
        return self.turns or self.call


@dataclass(frozen=True)
class AudioResult:
    """What a span says about its audio."""

    duration: float | None = None
    uri: str | None = None
    reference: str | None = None
    """Langfuse's media reference (or a data URI), for the observation's input or output."""
    dropped: bool = False
    truncated: bool = False
    start_offset: float | None = None
    """Seconds from the span's start to the recording's first sample (the call only)."""
    unavailable: str | None = None
    """Why the call has no recording (``timeout``, ``dropped``, ``failed``, ``no audio``)."""
    mime_type: str = MIME_TYPE


# builds a span's attributes from its audio (the conventions module does it)
Writer = Callable[[AudioResult], dict[str, Any]]
# LiveKit's own recording of the session: (file, its start as time.time(), still writing)
LiveKitRecording = Callable[[], "tuple[Path | None, float | None, bool] | None"]


class SessionAudio:
    """Clips and recording of one session; every method is cheap and runs on the loop."""

    def __init__(
        self,
        settings: AudioSettings,
        worker: AudioWorker,
        started_at: float,
        livekit_recording: LiveKitRecording | None = None,
        protect: Callable[[Callable[..., None]], Callable[..., None]] | None = None,
    ) -> None:
        self.settings = settings
        self.worker = worker
        self.started_at = started_at
        self._livekit_recording = livekit_recording
        # makes a listener LiveKit calls safe: a failure of ours never reaches LiveKit
        self._protect = protect or _contained
        self._lead_in = LeadIn(settings.lead_in)
        self._user_clip: Clip | None = None
        self._call: LazyCallRecording | None = None
        self._call_state = "unknown" if settings.call else "off"
        self._t0: float | None = None
        self._user_next = 0
        self._agent_next = 0
        self._agent_segment_start = 0
        self._call_dropped = False
        self._batch: list[tuple[int, int, Any]] = []
        self._segments: weakref.WeakKeyDictionary[Any, deque[int]] = weakref.WeakKeyDictionary()
        self._listeners: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []

    # -- the user's audio -----------------------------------------------------------------
    def user_frame(self, frame: Any) -> None:
        """A frame of the user's audio as the agent received it."""
        if self.settings.turns:
            self._lead_in.add(frame)
            if self._user_clip is not None:
                self._user_clip.add(frame)
        if self._recording_ourselves():
            at = time.time()
            start = max(self._samples(at), self._user_next)
            self._user_next = start + round(frame_seconds(frame) * SAMPLE_RATE)
            self._place(0, start, frame)

    def user_speech_started(self) -> Clip | None:
        """The user started speaking: a new clip, from the lead-in on."""
        if not self.settings.turns:
            return None
        if self._user_clip is not None:
            self._user_clip.close()
        self._user_clip = Clip(self.settings.clip_limit, self._lead_in.take())
        return self._user_clip

    def user_speech_ended(self) -> None:
        """The user stopped speaking: the clip ends here unless the speech resumes."""
        if self._user_clip is not None:
            self._user_clip.mark_end()
        self._lead_in.take()  # the next clip's lead-in is heard after this speech

    # -- the agent's audio ----------------------------------------------------------------
    def agent_clip(self) -> Clip | None:
        """A new clip for a reply's audio (``None`` when turns are not captured)."""
        return Clip(self.settings.clip_limit) if self.settings.turns else None

    def agent_frame(self, clip: Clip | None, frame: Any, first: bool, output: Any) -> None:
        """A frame of a reply handed to the audio output (``first`` of its segment)."""
        if clip is not None:
            clip.add(frame)
        if not self._recording_ourselves():
            return
        if first:
            self._agent_segment_start = max(self._samples(time.time()), self._agent_next)
            self._agent_next = self._agent_segment_start
            self._segment_started(output, self._agent_segment_start)
        start = self._agent_next
        self._agent_next = start + round(frame_seconds(frame) * SAMPLE_RATE)
        self._place(1, start, frame)

    def _segment_started(self, output: Any, start: int) -> None:
        if output is None:
            return
        starts = self._segments.get(output)
        if starts is None:
            starts = self._segments[output] = deque()
            self._listen(output, starts)
        starts.append(start)

    def _listen(self, output: Any, starts: deque[int]) -> None:
        def on_finished(event: Any) -> None:
            if not starts or self._call is None:
                return
            start = starts.popleft()
            position = getattr(event, "playback_position", None)
            if not isinstance(position, (int, float)):
                return
            stop = start + round(float(position) * SAMPLE_RATE)
            if stop < self._agent_next:  # cut where playback stopped
                self._flush_batch()
                self.worker.submit(_silence, self._call, 1, stop, self._agent_next)
                self._agent_next = stop

        listener = self._protect(on_finished)
        output.on("playback_finished", listener)
        self._listeners.append((weakref.ref(output), listener))

    # -- the call recording ---------------------------------------------------------------
    def _recording_ourselves(self) -> bool:
        if self._call_state == "unknown":
            livekit = self._livekit_recording() if self._livekit_recording else None
            self._call_state = "livekit" if livekit is not None else "ours"
            if self._call_state == "ours":
                self._call = LazyCallRecording()
                self._t0 = time.time()
        return self._call_state == "ours"

    def _samples(self, at: float) -> int:
        return max(round((at - (self._t0 or at)) * SAMPLE_RATE), 0)

    def _place(self, channel: int, offset: int, frame: Any) -> None:
        # frames go to the worker in batches: one job per frame would cost the loop more
        self._batch.append((channel, offset, frame))
        if len(self._batch) >= PLACE_BATCH:
            self._flush_batch()

    def _flush_batch(self) -> None:
        call, batch = self._call, self._batch
        if call is None or not batch:
            return
        self._batch = []
        if not self.worker.submit(_place_and_settle, call, batch, self._now()):
            self._call_dropped = True

    def _now(self) -> int:
        return self._samples(time.time())

    # -- ending spans with their audio ----------------------------------------------------
    def finish_clip(
        self, span: Any, end_ns: int, clip: Clip | None, field: str, kind: str, write: Writer
    ) -> None:
        """End ``span`` at ``end_ns`` once ``clip`` is stored (now, without a clip)."""
        if clip is None:
            span.end(end_ns)
            return
        clip.close()
        if not clip.frames or clip.duration <= 0:
            span.end(end_ns)
            return
        placement = _placement(span, field, kind)
        job = (self._store_clip, span, end_ns, clip, placement, write)
        if not self.worker.submit(*job):
            _end(span, end_ns, write(AudioResult(dropped=True)))

    def _store_clip(
        self, span: Any, end_ns: int, clip: Clip, placement: Placement, write: Writer
    ) -> None:
        values: dict[str, Any] = {}
        try:
            data = encode_clip(clip.frames, clip.duration)
            uri, reference = self._keep(data, placement)
            result = AudioResult(round(clip.duration, 6), uri, reference, truncated=clip.truncated)
            values = write(result)
        finally:
            _end(span, end_ns, values)

    def _keep(self, data: bytes, placement: Placement) -> tuple[str | None, str | None]:
        """Store the bytes and upload them; returns (URI, reference). Failures are logged."""
        uri = reference = None
        if self.settings.store is not None:
            try:
                uri = self.settings.store.put(data, placement)
            except Exception as error:
                _report("storing audio", error)
        if self.settings.inline:
            reference = data_uri(MIME_TYPE, data)
        elif self.settings.langfuse is not None:
            reference = self.settings.langfuse.attach(data, MIME_TYPE, placement)
        return uri, reference

    def finish_session(self, span: Any, end_ns: int, write: Writer) -> None:
        """End the root span after the spans still waiting for their clips (the worker
        runs jobs in order) and, with ``call``, once the recording is attached; at most
        ``recording_wait`` seconds from now either way."""
        self._stop_listening()
        self._flush_batch()
        if self._user_clip is not None:
            self._user_clip.close()
        once = _Once(span, end_ns)
        if not self.settings.call:
            job: tuple[Any, ...] = (once.end, {})
            missing = AudioResult()
        else:
            placement = _placement(span, "output", "call")
            if self._call_state == "unknown":  # no audio came in: LiveKit's recording, or none
                livekit = self._livekit_recording() if self._livekit_recording else None
                self._call_state = "livekit" if livekit is not None else "none"
            if self._call_state == "livekit":
                job = (self._attach_livekit_recording, once, placement, write)
            elif self._call is not None:
                job = (self._attach_own_recording, once, placement, write)
            else:
                job = (once.end, write(AudioResult(unavailable="no audio")))
            missing = AudioResult(unavailable="timeout")
        # the timer ends the span if the job has not by then; a finished job cancels it
        timer = threading.Timer(
            self.settings.recording_wait,
            lambda: once.end(write(missing) if self.settings.call else {}),
        )
        timer.daemon = True
        once.timer = timer
        timer.start()
        if not self.worker.submit(*job):
            dropped = AudioResult(unavailable="dropped", dropped=True)
            once.end(write(dropped) if self.settings.call else {})

    def _attach_own_recording(self, once: _Once, placement: Placement, write: Writer) -> None:
        if self._call is None or not self._call.started:
            once.end({})
            return
        call = self._call.recording
        values: dict[str, Any] = {}
        try:
            path = call.finish()
            duration = call.duration
            offset = (self._t0 or self.started_at) - self.started_at
            values = self._attach_file(path, duration, offset, placement, write)
        except Exception:
            values = write(AudioResult(unavailable="failed"))
            raise
        finally:
            once.end(values)
            call.discard()

    def _attach_livekit_recording(self, once: _Once, placement: Placement, write: Writer) -> None:
        deadline = time.monotonic() + self.settings.recording_wait
        found = self._livekit_recording() if self._livekit_recording else None
        while found is not None and found[2] and time.monotonic() < deadline:
            time.sleep(0.02)  # LiveKit's encoder thread is still writing the file
            found = self._livekit_recording() if self._livekit_recording else None
        values: dict[str, Any] = {}
        try:
            path = Path(found[0]) if found is not None and found[0] is not None else None
            if found is None or path is None or found[2] or not path.exists():
                values = write(AudioResult(unavailable="timeout" if found else "failed"))
                return
            duration = _ogg_duration(path)
            offset = (found[1] or self.started_at) - self.started_at
            values = self._attach_file(path, duration, offset, placement, write)
        finally:
            once.end(values)

    def _attach_file(
        self, path: Path, duration: float, offset: float, placement: Placement, write: Writer
    ) -> dict[str, Any]:
        data = path.read_bytes()
        uri, reference = self._keep(data, placement)
        return write(
            AudioResult(
                round(duration, 6),
                uri,
                reference,
                dropped=self._call_dropped,
                start_offset=round(offset, 6),
            )
        )

    def _stop_listening(self) -> None:
        for output_ref, listener in self._listeners:
            output = output_ref()
            if output is not None:
                output.off("playback_finished", listener)
        self._listeners.clear()


def _contained(function: Callable[..., None]) -> Callable[..., None]:
    def contained(*args: Any) -> None:
        try:
            function(*args)
        except Exception as error:
            _report("following playback", error)

    return contained


class _Once:
    """Ends a span once, from whichever thread gets there first."""

    def __init__(self, span: Any, end_ns: int) -> None:
        self.span = span
        self.end_ns = end_ns
        self.timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._done = False

    def end(self, values: dict[str, Any]) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.timer is not None:
            self.timer.cancel()
        _end(self.span, self.end_ns, values)


def _place_and_settle(call: LazyCallRecording, batch: list[tuple[int, int, Any]], now: int) -> None:
    recording = call.recording
    for channel, offset, frame in batch:
        recording.place(channel, offset, frame)
    recording.settle(now)


def _silence(call: LazyCallRecording, channel: int, start: int, end: int) -> None:
    if call.started:
        call.recording.silence(channel, start, end)


def _end(span: Any, end_ns: int, values: dict[str, Any]) -> None:
    if values:
        span.set_attributes(values)
    span.end(end_ns)


def _placement(span: Any, field: str, kind: str) -> Placement:
    context = span.get_span_context()
    trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    return Placement(trace_id, span_id, field, f"{trace_id}-{span_id}-{kind}.ogg")


def _ogg_duration(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / 1_000_000


_reported: set[str] = set()


def _report(what: str, error: BaseException) -> None:
    if what not in _reported:
        _reported.add(what)
        logger.warning(
            "livekit-otel: %s failed (%s: %s); the call is unaffected",
            what,
            type(error).__name__,
            error,
        )
