"""The price table shipped in the package, user prices, and the ``prices`` option.

Published prices are written here as their sources give them (USD per 1M tokens, per
minute, per 1M characters), and Langfuse's as its default price list gives them (USD
per token), so the table is checked against its sources, not against itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livekit_otel import LiveKitAgentsInstrumentor
from livekit_otel.config import ENV_PRICES, resolve_options
from livekit_otel.mapping.facts import Usage
from livekit_otel.mapping.prices import DEFAULT_TABLE, TABLE_DATE, table_for, user_entries

# Langfuse's default-model-prices.json (worker/src/constants, read 2026-12-03), per token
LANGFUSE = {
    ("llm", "gpt-4o"): {"input": 2.5e-06, "input_cached_tokens": 1.25e-06, "output": 1e-05},
    ("llm", "gpt-4o-mini"): {"input": 1.5e-07, "input_cached_tokens": 7.5e-08, "output": 6e-07},
    ("llm", "gpt-4.1"): {"input": 2e-06, "input_cached_tokens": 5e-07, "output": 8e-06},
    ("llm", "gpt-4.1-mini"): {"input": 4e-07, "input_cached_tokens": 1e-07, "output": 1.6e-06},
    ("llm", "gpt-4.1-nano"): {"input": 1e-07, "input_cached_tokens": 2.5e-08, "output": 4e-07},
    ("llm", "gemini-2.0-flash"): {"input": 1e-07, "output": 4e-07},
    ("realtime", "gpt-4o-realtime-preview"): {
        "input_text_tokens": 5e-06,
        "input_cached_text_tokens": 2.5e-06,
        "output_text_tokens": 2e-05,
        "input_audio_tokens": 0.0001,
        "input_cached_audio_tokens": 2e-05,
        "output_audio_tokens": 0.0002,
    },
}
# OpenAI's model pages, as published
OPENAI = {
    ("realtime", "gpt-realtime"): (
        "1M tokens",
        {"input_audio_tokens": 32.0, "output_audio_tokens": 64.0},
    ),
    ("stt", "whisper-1"): ("minute", {"input_audio_seconds": 0.006}),
    ("tts", "tts-1"): ("1M characters", {"input_characters": 15.0}),
    ("tts", "tts-1-hd"): ("1M characters", {"input_characters": 30.0}),
    ("tts", "gpt-4o-mini-tts"): (
        "1M tokens",
        {"input_text_tokens": 0.6, "output_audio_tokens": 12.0},
    ),
}


@pytest.mark.parametrize(("kind", "model"), sorted(LANGFUSE))
def test_where_langfuse_prices_a_model_the_table_has_the_same_numbers(
    kind: str, model: str
) -> None:
    entry = DEFAULT_TABLE.price(kind, model)
    assert entry is not None
    assert entry.per_unit == pytest.approx(LANGFUSE[(kind, model)], rel=1e-12)


@pytest.mark.parametrize(("kind", "model"), sorted(OPENAI))
def test_openai_speech_and_realtime_prices_are_as_published(kind: str, model: str) -> None:
    entry = DEFAULT_TABLE.price(kind, model)
    assert entry is not None
    unit, published = OPENAI[(kind, model)]
    assert entry.unit == unit
    assert {key: entry.prices[key] for key in published} == published


def test_every_entry_says_where_its_prices_come_from_and_when_they_were_read() -> None:
    entries = DEFAULT_TABLE.entries()
    assert len(entries) >= 20
    for entry in entries:
        assert entry.source.strip(), entry.model
        assert entry.origin == TABLE_DATE
        if not entry.prices:
            assert entry.source.startswith("no price"), entry.model


def test_a_known_model_without_a_confirmed_price_has_no_cost() -> None:
    usage = Usage("stt", "nova-3", "deepgram", {"input_audio_seconds": 30.0})
    assert DEFAULT_TABLE.price("stt", "nova-3") is not None
    assert DEFAULT_TABLE.cost(usage) is None


def test_models_are_found_by_alias_any_case_and_with_a_provider_prefix() -> None:
    for name in ("gpt-4o-mini", "GPT-4o-Mini", "openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        entry = DEFAULT_TABLE.price("llm", name)
        assert entry is not None and entry.model == "gpt-4o-mini", name
    assert DEFAULT_TABLE.price("llm", "gpt-4o-mini-tts") is None  # a TTS model, not an LLM
    assert DEFAULT_TABLE.price("llm", "my-own-model") is None


def test_cached_tokens_without_a_price_of_their_own_cost_as_uncached_input() -> None:
    usage = Usage(
        "llm", "gemini-2.0-flash", "google", {"input": 1000.0, "input_cached_tokens": 500.0}
    )
    cost = DEFAULT_TABLE.cost(usage)
    assert cost is not None
    assert cost.total == pytest.approx(1500 * 0.1 / 1e6)


def test_a_user_price_per_minute_prices_audio_seconds() -> None:
    table = table_for({"nova-3": {"kind": "stt", "unit": "minute", "input_audio_seconds": 0.0077}})
    cost = table.cost(Usage("stt", "nova-3", "deepgram", {"input_audio_seconds": 90.0}))
    assert cost is not None
    assert cost.total == pytest.approx(1.5 * 0.0077)
    assert cost.source == "user"


def test_a_user_price_defaults_to_an_llm_per_million_tokens() -> None:
    entries, removed = user_entries({"my-llm": {"input": 0.5, "output": 1.5}})
    (entry,) = entries
    assert (entry.kind, entry.unit, removed) == ("llm", "1M tokens", [])
    cost = entry.cost(Usage("llm", "my-llm", None, {"input": 2e6, "output": 1e6}))
    assert cost is not None and cost.total == pytest.approx(2.5)


def test_a_user_price_replaces_the_tables() -> None:
    table = table_for({"tts-1": {"kind": "tts", "input_characters": 10.0}})
    cost = table.cost(Usage("tts", "tts-1", "openai", {"input_characters": 1000.0}))
    assert cost is not None and cost.total == pytest.approx(1000 * 10.0 / 1e6)


def test_a_model_priced_none_has_no_cost() -> None:
    table = table_for({"gpt-4o-mini": None})
    assert table.cost(Usage("llm", "openai/gpt-4o-mini", "openai", {"input": 100.0})) is None
    assert table.cost(Usage("llm", "gpt-4o", "openai", {"input": 100.0})) is not None


@pytest.mark.parametrize(
    ("prices", "says"),
    [
        ({"m": {"kind": "stt", "input": 1.0}}, "'input' is not a stt usage key"),
        ({"m": {"kind": "stt", "unit": "1M tokens", "input_audio_seconds": 1.0}}, "counts seconds"),
        ({"m": {"kind": "voice", "input": 1.0}}, "kind must be one of"),
        ({"m": {"input": -1.0}}, "must be a USD amount >= 0"),
        ({"m": {"unit": "week", "input": 1.0}}, "unit must be one of"),
        ({"m": 0.5}, "must be a mapping of usage key to USD, or None"),
    ],
)
def test_a_bad_price_is_refused_at_instrument_time_saying_what_to_fix(
    prices: dict, says: str
) -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    with pytest.raises(ValueError, match=says):
        instrumentor.instrument(prices=prices)
    assert not instrumentor.is_instrumented_by_opentelemetry


def test_prices_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PRICES, json.dumps({"my-llm": {"input": 1.0}}))
    assert resolve_options().prices == {"my-llm": {"input": 1.0}}


def test_prices_come_from_a_json_file_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"nova-3": {"kind": "stt", "input_audio_seconds": 0.0077}}))
    monkeypatch.setenv(ENV_PRICES, str(path))
    prices = resolve_options().prices
    assert prices is not None and table_for(prices).price("stt", "nova-3") is not None


def test_an_unreadable_prices_variable_says_what_it_must_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_PRICES, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="JSON object or the path of a JSON file"):
        resolve_options()


def test_the_prices_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_PRICES, "{not json")
    assert resolve_options(prices={"a": None}).prices == {"a": None}
