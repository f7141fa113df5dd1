"""A session's usage totals (``lk.usage.*`` on ``agent_session``) and the usage counters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import compat
from ..mapping import attributes as attr
from ..mapping.facts import RealtimeUsage
from ..mapping.instruments import Instruments

_USAGE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "llm": (
        (attr.LK_USAGE_LLM_PROMPT_TOKENS, "prompt_tokens"),
        (attr.LK_USAGE_LLM_PROMPT_CACHED_TOKENS, "prompt_cached_tokens"),
        (attr.LK_USAGE_LLM_COMPLETION_TOKENS, "completion_tokens"),
    ),
    "tts": (
        (attr.LK_USAGE_TTS_CHARACTERS, "characters_count"),
        (attr.LK_USAGE_TTS_AUDIO_DURATION, "audio_duration"),
    ),
}


_REALTIME_USAGE_FIELDS = (
    (attr.LK_USAGE_REALTIME_INPUT_TOKENS, "input_tokens"),
    (attr.LK_USAGE_REALTIME_INPUT_TEXT_TOKENS, "input_text_tokens"),
    (attr.LK_USAGE_REALTIME_INPUT_AUDIO_TOKENS, "input_audio_tokens"),
    (attr.LK_USAGE_REALTIME_INPUT_CACHED_TOKENS, "input_cached_tokens"),
    (attr.LK_USAGE_REALTIME_OUTPUT_TOKENS, "output_tokens"),
    (attr.LK_USAGE_REALTIME_OUTPUT_TEXT_TOKENS, "output_text_tokens"),
    (attr.LK_USAGE_REALTIME_OUTPUT_AUDIO_TOKENS, "output_audio_tokens"),
)


class UsageTotals:
    """Adds up one session's usage from LiveKit's metrics, and counts it as metrics."""

    def __init__(self, instruments: Instruments, component: Callable[[str], Any]) -> None:
        self.instruments = instruments
        self._component = component
        self.totals: dict[str, float] = {}

    def add_node(self, kind: str, metrics: Any) -> None:
        """LLM or TTS metrics: tokens, or characters and audio seconds."""
        for key, field in _USAGE_FIELDS[kind]:
            self._count(key, getattr(metrics, field, 0))
        if kind == "tts":
            self._record("tts", getattr(metrics, "characters_count", 0))

    def add_stt(self, metrics: Any) -> None:
        """STT metrics: seconds of audio transcribed."""
        self._count(attr.LK_USAGE_STT_AUDIO_DURATION, getattr(metrics, "audio_duration", 0))
        self._record("stt", getattr(metrics, "audio_duration", 0))

    def add_realtime(self, usage: RealtimeUsage) -> None:
        """One realtime response's tokens, by modality."""
        for key, field in _REALTIME_USAGE_FIELDS:
            self._count(key, getattr(usage, field))

    def _record(self, kind: str, amount: Any) -> None:
        if isinstance(amount, (int, float)) and amount > 0:
            component = compat.model_and_provider(self._component(kind))
            self.instruments.record_usage(kind, amount, component)

    def _count(self, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and value:
            self.totals[key] = self.totals.get(key, 0) + value
