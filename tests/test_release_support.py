"""Which livekit-agents releases livekit-otel accepts, and how it degrades on unknown ones."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import pytest
from livekit_otel_dev.scripted import UserTurn

from livekit_otel import LiveKitAgentsInstrumentor, UnsupportedVersionError, compat, instrumentor
from support.tracing import Tracing, trace_session

TURNS = [UserTurn("hello there"), UserTurn("and goodbye")]


@pytest.fixture
def reported_release(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """``report(version)``: make livekit-otel see another livekit-agents release."""

    def report(version: str) -> None:
        monkeypatch.setattr(compat, "livekit_version", lambda: version)
        monkeypatch.setattr(compat, "_warned_newer", False)

    return report


def test_a_release_older_than_1_3_6_is_refused_with_the_supported_range(
    reported_release: Callable[[str], None],
) -> None:
    reported_release("1.3.5")
    instrumentor_ = LiveKitAgentsInstrumentor()
    with pytest.raises(UnsupportedVersionError, match=r"livekit-agents >= 1\.3\.6, < 1\.9"):
        instrumentor_.instrument()
    assert not instrumentor_.is_instrumented_by_opentelemetry


def test_the_refusal_names_the_release_found(reported_release: Callable[[str], None]) -> None:
    reported_release("1.2.18")
    with pytest.raises(UnsupportedVersionError, match=r"found livekit-agents 1\.2\.18"):
        LiveKitAgentsInstrumentor().instrument()


async def test_a_newer_release_is_instrumented_with_one_warning(
    reported_release: Callable[[str], None],
    instrument: Callable[..., Tracing],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported_release("1.9.0")
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        instrument()
        tracing = instrument()  # instrumenting again does not warn again
    warnings = [r for r in caplog.records if "1.9.0 is newer" in r.getMessage()]
    assert len(warnings) == 1
    traced = await trace_session(tracing, TURNS, mode="text")
    assert traced.tree.names["agent_turn"] == 2


async def test_a_missing_hook_costs_only_its_own_spans_and_one_warning(
    monkeypatch: pytest.MonkeyPatch,
    instrument: Callable[..., Tracing],
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = tuple(
        dataclasses.replace(hook, attribute="perform_tts_inference_renamed")
        if hook.attribute == "perform_tts_inference"
        else hook
        for hook in instrumentor.HOOKS
    )
    monkeypatch.setattr(instrumentor, "HOOKS", table)
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        tracing = instrument()
    warnings = [r.getMessage() for r in caplog.records if "could not find" in r.getMessage()]
    assert len(warnings) == 1
    assert "tts_node spans" in warnings[0]
    assert "perform_tts_inference_renamed" in warnings[0]
    traced = await trace_session(tracing, TURNS, mode="text")
    assert traced.tree.names["tts_node"] == 0
    assert traced.tree.names["llm_node"] == 2
    assert traced.lifecycle.still_open == []
