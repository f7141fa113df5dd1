"""At job shutdown the flush that ``setup_otlp`` registers delivers the last session's spans.

A stand-in job context takes the shutdown callbacks, and ``shutdown()`` runs them the way
LiveKit's job process does: all at once, each awaited with the reason. The batch
processor's schedule is set to a minute, so only the flush can deliver the spans.
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
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, bootstrap, setup_otlp
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
    """The provider setup_otlp built inside the job, and the receiver it exports to."""

    job: FakeJob
    provider: TracerProvider
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
    monkeypatch.setattr(bootstrap, "_installed", None)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only a flush sends spans
    provider = setup_otlp(
        otlp_receiver.url, headers={}, timeout=20.0, shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    lifecycle = SpanLifecycle()
    provider.add_span_processor(lifecycle)
    try:
        yield Exporting(job, provider, lifecycle, otlp_receiver)
    finally:
        uninstrument()
        otlp_receiver.release()
        provider.shutdown()


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


def test_setup_inside_a_job_registers_one_shutdown_callback(exporting: Exporting) -> None:
    assert len(exporting.job.callbacks) == 1


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
