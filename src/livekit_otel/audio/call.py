"""The call recording made here when LiveKit makes none: two channels streamed to a file.

User audio is channel 0 (left), the agent's channel 1 (right), on one timeline counted in
samples from the recording's first sample. Placed frames go to one raw file per channel
at their offsets (a sparse file: gaps read as silence); what can no longer change (older
than ``SETTLE_SECONDS``) is encoded into the Ogg/Opus file as the call goes on, so neither
the raw audio nor the encoded one is ever held in memory and little is left to encode at
the end. Used from the audio worker thread only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .encode import SAMPLE_RATE, OpusWriter, mono_pcm

SETTLE_SECONDS = 2.0
"""Audio older than this is final: a reply is cut where playback stopped, which is now."""
ENCODE_STEP_SECONDS = 5.0
"""Encode when this much settled audio has gathered."""
_BYTES = 2  # per sample, 16-bit


class CallRecording:
    """A two-channel recording being written; ``finish`` returns the Ogg/Opus file."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="livekit-otel-call-"))
        self._raw = [open(self.directory / f"channel-{n}.raw", "w+b") for n in (0, 1)]  # noqa: SIM115
        self._ends = [0, 0]
        self.path = self.directory / "call.ogg"
        self._writer = OpusWriter(str(self.path), channels=2)
        self._encoded = 0

    def place(self, channel: int, offset: int, frame: Any) -> None:
        """Write a frame's samples on ``channel`` from sample ``offset`` on."""
        if offset < self._encoded:  # late for the part already encoded: keep what fits
            skip = self._encoded - offset
            pcm = mono_pcm(frame)[skip:]
            offset = self._encoded
        else:
            pcm = mono_pcm(frame)
        if not len(pcm):
            return
        raw = self._raw[channel]
        raw.seek(offset * _BYTES)
        raw.write(pcm.tobytes())
        self._ends[channel] = max(self._ends[channel], offset + len(pcm))

    def silence(self, channel: int, start: int, end: int) -> None:
        """Make ``[start, end)`` of ``channel`` silent (a reply cut where playback stopped)."""
        start = max(start, self._encoded)
        end = min(end, self._ends[channel])
        if end <= start:
            return
        raw = self._raw[channel]
        raw.seek(start * _BYTES)
        raw.write(bytes((end - start) * _BYTES))

    def settle(self, now: int) -> None:
        """Encode what can no longer change, once enough of it gathered (``now`` in samples)."""
        settled = now - int(SETTLE_SECONDS * SAMPLE_RATE)
        if settled - self._encoded >= ENCODE_STEP_SECONDS * SAMPLE_RATE:
            self._encode_until(settled)

    def finish(self) -> Path:
        """Encode the rest and close the file; returns its path."""
        self._encode_until(max(self._ends))
        self._writer.close()
        for raw in self._raw:
            raw.close()
            os.unlink(raw.name)
        return self.path

    def discard(self) -> None:
        """Delete everything written."""
        for raw in self._raw:
            if not raw.closed:
                raw.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def duration(self) -> float:
        """Seconds recorded so far."""
        return max(self._ends) / SAMPLE_RATE

    def _encode_until(self, end: int) -> None:
        step = SAMPLE_RATE  # a second at a time
        while self._encoded < end:
            count = min(step, end - self._encoded)
            block = np.zeros((count, 2), dtype=np.int16)
            for channel, raw in enumerate(self._raw):
                raw.seek(self._encoded * _BYTES)
                data = np.frombuffer(raw.read(count * _BYTES), dtype=np.int16)
                block[: len(data), channel] = data
            self._writer.write(block)
            self._encoded += count


class LazyCallRecording:
    """A :class:`CallRecording` made by the first job that uses it, on the worker thread
    (opening the encoder is no work for the event loop)."""

    def __init__(self) -> None:
        self._recording: CallRecording | None = None

    @property
    def recording(self) -> CallRecording:
        """The recording (made now if it was not yet)."""
        if self._recording is None:
            self._recording = CallRecording()
        return self._recording

    @property
    def started(self) -> bool:
        """Whether any audio was placed."""
        return self._recording is not None
