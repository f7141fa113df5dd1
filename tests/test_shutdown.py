"""At job shutdown the flushes that ``setup_otlp`` registers deliver the last session's spans
and metrics.

A stand-in job context takes the shutdown callbacks, and ``shutdown()`` runs them the way
LiveKit's job process does: all at once, each awaited with the reason. The batch
processor's schedule and the metric reader's interval are set to a minute, so only the
flush can deliver the spans and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import livekit.agents
import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from livekit_otel_dev.scripted import ScriptedConversation, ToolCall, UserTurn
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, installed_meter_provider, setup_otlp
from livekit_otel.recording import registry as lifecycle
from livekit_otel.setup import installed as setup_state
from support.tracing import SpanLifecycle

SHUTDOWN_TIMEOUT_S = 1.0
SHUTDOWN_SLACK_S = 1.5
CLOSE_TAKES_S = 0.2  # within the half of the shutdown bound the flush waits for sessions
SCRIPT = (
    UserTurn("hello there"),
    UserTurn("weather in Paris?", reply=ToolCall("lookup_weather", {"location": "Paris"})),
    UserTurn("thanks, bye"),
)


@dataclass(eq=False)
class FakeJob:
    """Takes shutdown callbacks like ``JobContext`` and runs them like LiveKit's job process."""

    callbacks: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)

    def add_shutdown_callback(self, callback: Callable[[str], Awaitable[None]]) -> None:
        self.callbacks.append(callback)

    async def shutdown(self, reason: str = "room_deleted") -> None:
        await asyncio.gather(*(callback(reason) for callback in self.callbacks))


@dataclass
class Exporting:
    """The providers setup_otlp built inside the job, and the receiver they export to."""

    job: FakeJob
    provider: TracerProvider
    meter_provider: MeterProvider
    lifecycle: SpanLifecycle
    receiver: OtlpReceiver


def uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def exporting(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exporting]:
    """``setup_otlp`` called inside a (stand-in) LiveKit job, exporting to the receiver."""
    job = FakeJob()
    uninstrument()
    monkeypatch.setattr(livekit.agents, "get_job_context", lambda: job)
    fresh_setup_state(monkeypatch)
    provider = setup_otlp(
        otlp_receiver.url, headers={}, timeout=20.0, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    meter_provider = installed_meter_provider()
    assert meter_provider is not None
    spans = SpanLifecycle()
    provider.add_span_processor(spans)
    try:
        yield Exporting(job, provider, meter_provider, spans, otlp_receiver)
    finally:
        uninstrument()
        otlp_receiver.release()
        provider.shutdown()
        meter_provider.shutdown()


def fresh_setup_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider set up before; spans and metrics sent only by a flush."""
    monkeypatch.setattr(setup_state, "_installed", None)
    monkeypatch.setattr(setup_state, "_served", None)
    monkeypatch.setattr(lifecycle, "_every_job", {})
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")


async def converse() -> ScriptedConversation:
    conversation = ScriptedConversation()
    await conversation.start()
    for turn in SCRIPT:
        await conversation.user_says(turn)
    return conversation


def close_on_shutdown(job: FakeJob, conversation: ScriptedConversation) -> None:
    """Close the session from a shutdown callback, as ``AgentSession.start`` does in a job.

    The close takes a moment, as when LiveKit lets the last reply finish first.
    """

    async def close(reason: str) -> None:
        await asyncio.sleep(CLOSE_TAKES_S)
        await conversation.aclose()

    job.add_shutdown_callback(close)


def test_setup_inside_a_job_registers_one_shutdown_callback_per_provider(
    exporting: Exporting,
) -> None:
    assert len(exporting.job.callbacks) == 2  # the spans and the metrics


async def test_spans_of_a_session_closed_before_shutdown_all_reach_the_receiver(
    exporting: Exporting,
) -> None:
    conversation = await converse()
    await conversation.aclose()
    assert exporting.receiver.requests == []

    await exporting.job.shutdown()

    started = exporting.lifecycle.started
    assert started >= 5 * len(SCRIPT)
    assert exporting.lifecycle.still_open == []
    assert len(exporting.receiver.wait_for_spans(started, timeout=2.0)) == started


async def test_spans_of_a_session_closed_by_the_shutdown_all_reach_the_receiver(
    exporting: Exporting,
) -> None:
    conversation = await converse()
    close_on_shutdown(exporting.job, conversation)

    await exporting.job.shutdown()

    started = exporting.lifecycle.started
    names = {span.name for span in exporting.receiver.wait_for_spans(started, timeout=2.0)}
    assert exporting.lifecycle.still_open == []
    assert len(exporting.receiver.spans) == started
    assert {"session_close", "agent_session"} <= names


async def test_shutdown_flush_returns_within_its_bound_when_the_receiver_hangs(
    exporting: Exporting, caplog: pytest.LogCaptureFixture
) -> None:
    exporting.receiver.respond(delay=30.0)
    conversation = await converse()
    close_on_shutdown(exporting.job, conversation)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        await exporting.job.shutdown()
    elapsed = time.monotonic() - started

    assert elapsed < SHUTDOWN_TIMEOUT_S + SHUTDOWN_SLACK_S
    assert len(exporting.receiver.wait_for_requests(1)) >= 1  # the flush did try
    assert any("did not finish" in record.getMessage() for record in caplog.records)


def agent_turns_received(receiver: OtlpReceiver) -> list[dict[str, object]]:
    return [span.attributes for span in receiver.spans_named("agent_turn")]


async def test_metrics_of_a_session_closed_by_the_shutdown_reach_the_receiver(
    exporting: Exporting,
) -> None:
    conversation = await converse()
    close_on_shutdown(exporting.job, conversation)
    assert exporting.receiver.metrics == []

    await exporting.job.shutdown()

    turns = agent_turns_received(exporting.receiver)
    heard = [t for t in turns if "lk.turn.perceived_latency" in t]
    (turn_count,) = exporting.receiver.latest("lk.turns").points
    (perceived,) = exporting.receiver.latest("lk.turn.perceived_latency").points
    assert turn_count.value == len(turns) == len(SCRIPT)
    assert perceived.count == len(heard) == len(SCRIPT)
    assert {m.path for m in exporting.receiver.metrics} == {"/v1/metrics"}


async def test_setup_at_import_flushes_spans_and_metrics_at_the_end_of_each_job(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way: setup at module level, outside any job; each job's first session
    registers the flushes, with the setup's bound."""
    uninstrument()
    fresh_setup_state(monkeypatch)

    def no_job() -> None:
        raise RuntimeError("no job context found")

    monkeypatch.setattr(livekit.agents, "get_job_context", no_job)
    provider = setup_otlp(otlp_receiver.url, headers={}, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    meter_provider = installed_meter_provider()
    assert meter_provider is not None
    try:
        for job_number in (1, 2):
            otlp_receiver.clear()
            job = FakeJob()
            monkeypatch.setattr(livekit.agents, "get_job_context", lambda job=job: job)
            conversation = await converse()
            close_on_shutdown(job, conversation)

            await job.shutdown()

            assert len(job.callbacks) == 3, job_number  # the close, the spans, the metrics
            turns = agent_turns_received(otlp_receiver)
            (turn_count,) = otlp_receiver.latest("lk.turns").points
            assert len(turns) == len(SCRIPT)
            assert turn_count.value == job_number * len(SCRIPT)  # cumulative in the process
    finally:
        uninstrument()
        otlp_receiver.release()
        provider.shutdown()
        meter_provider.shutdown()


async def test_metrics_flush_returns_within_its_bound_when_the_metrics_receiver_hangs(
    exporting: Exporting, caplog: pytest.LogCaptureFixture
) -> None:
    conversation = await converse()
    close_on_shutdown(exporting.job, conversation)
    exporting.receiver.respond(delay=30.0)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        await exporting.job.shutdown()
    elapsed = time.monotonic() - started

    assert elapsed < SHUTDOWN_TIMEOUT_S + SHUTDOWN_SLACK_S
    metrics_requests = [r for r in exporting.receiver.requests if r.path == "/v1/metrics"]
    assert metrics_requests  # the flush did try
    assert any(
        "flushing metrics at job shutdown" in record.getMessage() for record in caplog.records
    )
