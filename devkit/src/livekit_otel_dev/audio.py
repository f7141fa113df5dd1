"""Reading back the audio livekit-otel stored: decode an Ogg file, find its tones.

For tests and the demo: the scripted kit speaks known tones (``UserTurn.tone``,
``ScriptedTTS(tones=...)``), and these helpers say which tone a clip holds, how long it is
and where each tone starts in a recording.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np


@dataclass(frozen=True)
class Decoded:
    """Decoded audio: ``samples`` of shape (channels, n), float in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples.shape[1] / self.sample_rate

    def channel(self, index: int) -> np.ndarray:
        """One channel's samples."""
        return self.samples[index]


def decode(source: bytes | str | Path) -> Decoded:
    """Decode audio bytes, a path or a ``file://`` URI (any format PyAV reads)."""
    if isinstance(source, str) and source.startswith("file://"):
        source = Path(unquote(urlparse(source).path))
    opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(opened) as container:
        stream = container.streams.audio[0]
        pieces = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = int(stream.codec_context.sample_rate)
    planar = [p if p.shape[0] > 1 or p.ndim == 2 else p.reshape(1, -1) for p in pieces]
    samples = np.concatenate(planar, axis=1) if planar else np.zeros((1, 0))
    if samples.dtype != np.float32 and samples.dtype != np.float64:
        samples = samples / 32768.0
    return Decoded(samples.astype(np.float64), rate)


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The frequency (Hz) with the most energy in ``samples``."""
    if len(samples) == 0:
        return 0.0
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    spectrum[0] = 0.0
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[int(np.argmax(spectrum))])


def tone_start(
    samples: np.ndarray, sample_rate: int, frequency: float, after: float = 0.0
) -> float | None:
    """Seconds from the start of ``samples`` to the first 10 ms whose loudest frequency is
    ``frequency`` (within 5 %) and which is not silent; at or after ``after`` seconds."""
    step = int(sample_rate * 0.01)
    window = step * 4
    start = int(after * sample_rate)
    for index in range(start, len(samples) - window, step):
        piece = samples[index : index + window]
        if np.sqrt(np.mean(piece**2)) < 0.02:
            continue
        if abs(dominant_frequency(piece, sample_rate) - frequency) <= 0.05 * frequency:
            # the first window holding the tone: refine to where its energy begins
            for offset in range(0, window, max(step // 10, 1)):
                if (
                    abs(piece[offset]) > 0.02
                    or np.sqrt(np.mean(samples[index + offset : index + offset + step] ** 2))
                    >= 0.05
                ):
                    return (index + offset) / sample_rate
            return index / sample_rate
    return None
