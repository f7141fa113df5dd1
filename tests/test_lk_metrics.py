"""LiveKit's metrics objects folded into one span's ``lk.<kind>.*`` attributes."""

from __future__ import annotations

from typing import Any

import pytest
from livekit.agents.metrics import TTSMetrics

from livekit_otel.mapping.lk_metrics import MetricsAggregate


def _tts(**fields: Any) -> TTSMetrics:
    base: dict[str, Any] = {
        "label": "scripted.TTS",
        "request_id": "req",
        "timestamp": 0.0,
        "ttfb": 0.0,
        "duration": 0.0,
        "audio_duration": 0.0,
        "cancelled": False,
        "characters_count": 0,
        "streamed": False,
    }
    base.update(fields)
    known = {name: value for name, value in base.items() if name in TTSMetrics.model_fields}
    return TTSMetrics(**known)


def _folded(*metrics: TTSMetrics) -> dict[str, Any]:
    aggregate = MetricsAggregate("tts")
    for one in metrics:
        aggregate.add(one)
    return aggregate.attributes()


def test_durations_and_counts_add_up_across_requests() -> None:
    values = _folded(
        _tts(duration=0.25, audio_duration=1.5, characters_count=20),
        _tts(duration=0.5, audio_duration=2.0, characters_count=31),
    )
    assert values["lk.tts.duration"] == pytest.approx(0.75)
    assert values["lk.tts.audio_duration"] == pytest.approx(3.5)
    assert values["lk.tts.characters_count"] == 51
    assert values["lk.tts.requests"] == 2


def test_time_to_first_byte_and_timestamp_come_from_the_first_request() -> None:
    values = _folded(_tts(ttfb=0.125, timestamp=100.0), _tts(ttfb=0.5, timestamp=101.0))
    assert values["lk.tts.ttfb"] == 0.125
    assert values["lk.tts.timestamp"] == 100.0


@pytest.mark.skipif(
    "acquire_time" not in TTSMetrics.model_fields, reason="the release reports no acquire_time"
)
def test_connection_acquire_time_adds_up_like_any_duration() -> None:
    values = _folded(_tts(acquire_time=0.0625), _tts(acquire_time=0.125))
    assert values["lk.tts.acquire_time"] == pytest.approx(0.1875)
