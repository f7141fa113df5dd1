"""Typed facts about one span, as the recorder knows them when it writes that span.

The recorder fills these from LiveKit's calls, events and metrics; the conventions module
turns each into the attributes of every convention in force. A fact is ``None`` when
LiveKit never said it: the conventions then write no attribute for it, never a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .lk_metrics import MetricsAggregate


@dataclass(frozen=True)
class Latency:
    """Perceived latency of one reply and its six parts, in seconds."""

    total: float
    end_of_turn: float
    on_user_turn_completed: float
    llm: float
    tools: float
    tts: float
    playout: float


@dataclass(frozen=True)
class Usage:
    """What one span's model used, in its billing unit, by usage key.

    ``kind`` is ``llm``, ``realtime``, ``stt`` or ``tts``; the keys are those of the price
    table (``mapping.prices.USAGE_KEYS``): tokens, seconds (``*_seconds``) or characters
    (``*_characters``).
    """

    kind: str
    model: str | None
    provider: str | None
    amounts: Mapping[str, float]


@dataclass(frozen=True)
class Cost:
    """What one span's usage cost in USD, by usage key, and whose price it used."""

    total: float
    details: Mapping[str, float]
    source: str  # the price table's read date, or "user"


@dataclass
class SessionFacts:
    """Who and what a session's spans are filed under; shared by every span of the session."""

    session_id: str
    user_id: str | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    environment: str | None = None
    release: str | None = None
    first_user_text: str | None = None
    """The call's first user line (the trace's input), once the user said something."""


@dataclass
class CallFacts:
    """The call at a glance, written on ``agent_session`` as it closes (seconds, USD)."""

    duration: float
    turns: int
    interrupted_turns: int
    user_talk_time: float
    agent_talk_time: float
    longest_silence: float | None
    latency_median: float | None
    latency_max: float | None
    end_reason: str | None
    costs: Mapping[str, float]  # by kind: llm, stt, tts, realtime (priced spans only)
    transcript: Sequence[tuple[str, str]]  # (role, text), the most recent lines
    transcript_dropped: int  # earlier lines no longer kept


@dataclass(frozen=True)
class SessionStart:
    """What is known when ``AgentSession.start`` is called."""

    agent_name: str
    room_name: str | None
    job_id: str | None


@dataclass
class SessionEnd:
    """A session's totals and its first and last words, written when it closes."""

    usage: Mapping[str, float]
    agent_turns: int
    vad: MetricsAggregate | None
    connection: MetricsAggregate | None
    first_user_text: str | None
    last_agent_text: str | None
    call: CallFacts | None = None


@dataclass
class UserTurnFacts:
    """One user utterance, written as ``user_turn`` once its end of turn is known."""

    input_mode: str
    committed: bool
    transcript: str
    stt: MetricsAggregate | None = None
    stt_model: str | None = None
    stt_provider: str | None = None
    speech_id: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None


@dataclass
class AgentTurnFacts:
    """One agent reply (a ``SpeechHandle``)."""

    speech_id: str
    source: str
    agent_name: str | None
    interrupted: bool = False
    closed_mid_reply: bool = False
    discarded: bool = False
    eou_delay: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None
    user_text: str | None = None
    spoken_text: str | None = None
    call_input: str | None = None
    """The call's first user line, as known when this reply ended."""
    latency: Latency | None = None
    played_duration: float | None = None


@dataclass(frozen=True)
class LlmRequest:
    """What one LLM inference was asked: model, provider, prompt and tools."""

    model: str | None
    provider: str | None
    chat_items: Sequence[Any] | None
    tool_definitions: str | None
    parameters: Mapping[str, Any]


@dataclass
class LlmResponse:
    """What one LLM inference answered, and what it cost."""

    text: str
    tool_calls: Sequence[Any]
    finish_reason: str
    completion_start_time: float | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    interrupted: bool = False
    cost: Cost | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool call as the LLM asked for it."""

    name: str
    call_id: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returned."""

    output: str
    is_error: bool


@dataclass(frozen=True)
class TtsRequest:
    """The speech synthesis of one reply step."""

    model: str | None
    provider: str | None


@dataclass(frozen=True)
class TtsResult:
    """What was sent to speech synthesis, and how much audio came back."""

    text: str | None
    audio_duration: float | None
    interrupted: bool
    usage: Usage | None = None
    cost: Cost | None = None


@dataclass(frozen=True)
class RealtimeUsage:
    """The tokens of one realtime response; ``text_tokens``/``audio_tokens`` include cached."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_text_tokens: int
    input_audio_tokens: int
    input_cached_tokens: int
    input_cached_text_tokens: int
    input_cached_audio_tokens: int
    output_text_tokens: int
    output_audio_tokens: int


@dataclass
class RealtimeResponseFacts:
    """One response of a realtime model, written when its metrics come."""

    response_id: str
    usage: RealtimeUsage | None
    completion_start_time: float | None
    cancelled: bool
    user_text: str | None
    output_text: str | None
    tool_calls: Sequence[Any]
    cost: Cost | None = None


@dataclass(frozen=True)
class AudioFacts:
    """The audio a span carries (a turn's clip or the call's recording), once stored."""

    mime_type: str
    duration: float | None
    uri: str | None
    reference: str | None
    """For Langfuse: the media reference (or data URI) to show beside the text."""
    field: str
    """``input`` or ``output``: where the reference goes."""
    text: str | None
    """The text already in that field, which the reference joins."""
    dropped: bool = False
    truncated: bool = False
    start_offset: float | None = None
    unavailable: str | None = None
