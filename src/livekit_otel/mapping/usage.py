"""Each billed model's usage in its billing unit, from what LiveKit reported for one span.

STT and TTS report tokens for token-billed models (OpenAI's ``gpt-4o-*-transcribe`` and
``gpt-4o-mini-tts``) and audio seconds or characters for every model: tokens, when
reported, are the billing unit; otherwise seconds (STT) or characters (TTS).
"""

from __future__ import annotations

from .facts import RealtimeUsage, Usage
from .lk_metrics import MetricsAggregate


def _number(aggregate: MetricsAggregate, field: str) -> float:
    value = aggregate.value(field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return 0.0
    return float(value)


def _reported(aggregate: MetricsAggregate, field: str) -> str | None:
    value = aggregate.value(field)
    return value if isinstance(value, str) and value else None


def _usage(
    kind: str, aggregate: MetricsAggregate, model: str | None, provider: str | None, amounts: dict
) -> Usage | None:
    kept = {key: amount for key, amount in amounts.items() if amount > 0}
    if not kept:
        return None
    return Usage(
        kind=kind,
        model=model or _reported(aggregate, "metadata.model_name"),
        provider=provider or _reported(aggregate, "metadata.model_provider"),
        amounts=kept,
    )


def stt_usage(
    aggregate: MetricsAggregate | None, model: str | None, provider: str | None
) -> Usage | None:
    """An utterance's STT usage: tokens when the provider reported them, else audio seconds."""
    if aggregate is None:
        return None
    inputs, outputs = _number(aggregate, "input_tokens"), _number(aggregate, "output_tokens")
    if inputs or outputs:
        audio = min(_number(aggregate, "input_audio_tokens"), inputs)
        amounts = {
            "input_audio_tokens": audio,
            "input_text_tokens": inputs - audio,
            "output_text_tokens": outputs,
        }
    else:
        amounts = {"input_audio_seconds": _number(aggregate, "audio_duration")}
    return _usage("stt", aggregate, model, provider, amounts)


def tts_usage(
    aggregate: MetricsAggregate | None, model: str | None, provider: str | None
) -> Usage | None:
    """A synthesis's TTS usage: tokens when the provider reported them, else characters."""
    if aggregate is None:
        return None
    inputs, outputs = _number(aggregate, "input_tokens"), _number(aggregate, "output_tokens")
    if inputs or outputs:
        amounts = {"input_text_tokens": inputs, "output_audio_tokens": outputs}
    else:
        amounts = {"input_characters": _number(aggregate, "characters_count")}
    return _usage("tts", aggregate, model, provider, amounts)


def llm_usage(
    model: str | None,
    provider: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None,
) -> Usage | None:
    """An LLM inference's tokens, cached input apart (as Langfuse splits them)."""
    if input_tokens is None or output_tokens is None:
        return None
    cached = min(cached_tokens or 0, input_tokens)
    amounts = {
        "input": float(input_tokens - cached),
        "input_cached_tokens": float(cached),
        "output": float(output_tokens),
    }
    kept = {key: amount for key, amount in amounts.items() if amount > 0}
    return Usage("llm", model, provider, kept) if kept else None


def realtime_amounts(usage: RealtimeUsage) -> dict[str, int]:
    """A realtime response's tokens by modality, cached apart (the ``gen_ai.usage.*`` splits)."""
    cached = usage.input_cached_text_tokens or usage.input_cached_tokens
    amounts = {
        "input_text_tokens": usage.input_text_tokens - cached,
        "input_cached_text_tokens": cached,
        "input_audio_tokens": usage.input_audio_tokens - usage.input_cached_audio_tokens,
        "input_cached_audio_tokens": usage.input_cached_audio_tokens,
        "output_text_tokens": usage.output_text_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
    }
    return {key: count for key, count in amounts.items() if count > 0}


def realtime_usage(
    usage: RealtimeUsage | None, model: str | None, provider: str | None
) -> Usage | None:
    """A realtime response's usage, for pricing."""
    if usage is None:
        return None
    amounts = {key: float(count) for key, count in realtime_amounts(usage).items()}
    return Usage("realtime", model, provider, amounts) if amounts else None
