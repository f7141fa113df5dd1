"""Ogg/Opus encoding with PyAV (a livekit-agents dependency), on a worker thread only."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Iterable
from typing import Any, BinaryIO

import av
import numpy as np

MIME_TYPE = "audio/ogg"
SAMPLE_RATE = 24_000
"""Opus's wideband rate: the whole range of speech."""
BIT_RATE = 24_000
"""Bits per second of each channel: clear speech, about 3 kB per second."""
ENCODER_OPTIONS = (("compression_level", "5"),)
"""libopus at medium complexity: a quarter less CPU than its default, same size for speech."""
_PIECE = SAMPLE_RATE // 10  # samples encoded at a time (100 ms)


def mono_pcm(frame: Any, rate: int = SAMPLE_RATE) -> np.ndarray:
    """One LiveKit frame as mono 16-bit samples at ``rate`` (a copy: the frame is left as is)."""
    channels = max(int(frame.num_channels), 1)
    samples = np.frombuffer(frame.data, dtype=np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    source_rate = int(frame.sample_rate)
    if source_rate != rate and len(samples):
        positions, grid = _resampling(len(samples), source_rate, rate)
        samples = np.interp(positions, grid, samples)
    return np.asarray(samples, dtype=np.int16)


@functools.lru_cache(maxsize=32)
def _resampling(length: int, source_rate: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the samples at ``rate`` fall among ``length`` samples at ``source_rate`` (frames
    of a stream share a few lengths: computed once each)."""
    count = round(length * rate / source_rate)
    return np.arange(count) * (source_rate / rate), np.arange(length)


class OpusWriter:
    """An Ogg/Opus stream being written to ``target`` (a path or a binary file)."""

    def __init__(self, target: str | BinaryIO, channels: int = 1) -> None:
        self.channels = channels
        self._container: Any = av.open(target, mode="w", format="ogg")
        layout = "stereo" if channels == 2 else "mono"
        self._stream: Any = self._container.add_stream(
            "libopus", rate=SAMPLE_RATE, layout=layout, options=dict(ENCODER_OPTIONS)
        )
        self._stream.bit_rate = BIT_RATE * channels
        self._layout = layout
        self._pts = 0

    def write(self, samples: np.ndarray) -> None:
        """Encode samples: shape ``(n,)`` for mono, ``(n, 2)`` for stereo, 16-bit."""
        # in short pieces: the encoder holds the GIL while it runs, and the event loop
        # must not wait for it
        for start in range(0, len(samples), _PIECE):
            self._write_piece(samples[start : start + _PIECE])

    def _write_piece(self, samples: np.ndarray) -> None:
        planar = samples.reshape(1, -1)  # packed: stereo samples interleaved
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planar, dtype=np.int16), format="s16", layout=self._layout
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        self._pts += len(samples)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        time.sleep(0)  # let the event loop's thread take the GIL between pieces

    def close(self) -> None:
        """Flush the encoder and close the container."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


def encode_clip(frames: Iterable[Any], seconds: float) -> bytes:
    """The first ``seconds`` of ``frames`` as mono Ogg/Opus bytes."""
    wanted = round(seconds * SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    have = 0
    for frame in frames:
        if have >= wanted:
            break
        pcm = mono_pcm(frame)[: wanted - have]
        pieces.append(pcm)
        have += len(pcm)
    buffer = io.BytesIO()
    writer = OpusWriter(buffer)
    if pieces:
        writer.write(np.concatenate(pieces))
    writer.close()
    return buffer.getvalue()
