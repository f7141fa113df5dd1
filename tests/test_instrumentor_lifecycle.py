"""``instrument()`` / ``uninstrument()``: what is patched, what is restored, what is traced."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from livekit.agents.metrics import LLMMetrics
from livekit.agents.telemetry import traces as builtin_traces
from livekit.agents.voice import agent_activity, agent_session
from livekit_otel_dev.scripted import (
    ScriptedConversation,
    ScriptedRun,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, set_tracer_provider
from livekit_otel.hooks.table import HOOKS
from support.tracing import Tracing, in_memory_provider

TURNS = [
    UserTurn("hello there"),
    UserTurn("weather in Paris?", reply=ToolCall("lookup_weather", {"location": "Paris"})),
]

# every place livekit-otel patches, named independently of its wrap table
TARGETS: list[tuple[Any, str]] = [
    (agent_session.AgentSession, "start"),
    (agent_session.AgentSession, "_aclose_impl"),
    (agent_session.AgentSession, "emit"),
    (agent_activity.AgentActivity, "on_end_of_turn"),
    (agent_activity, "perform_llm_inference"),
    (agent_activity, "perform_tts_inference"),
    (agent_activity, "perform_tool_executions"),
]
TARGET_IDS = [f"{getattr(owner, '__name__', owner)}.{name}" for owner, name in TARGETS]


def own_attribute(owner: Any, name: str) -> Any:
    """The attribute as stored on its owner (no descriptor binding)."""
    return vars(owner)[name]


@pytest.fixture
def instrumentor() -> Iterator[LiveKitAgentsInstrumentor]:
    """The instrumentor, not instrumented at the start and uninstrumented at the end."""
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.mark.parametrize(("owner", "name"), TARGETS, ids=TARGET_IDS)
def test_instrument_wraps_the_target(
    instrumentor: LiveKitAgentsInstrumentor, owner: Any, name: str
) -> None:
    original = own_attribute(owner, name)
    provider, _, _ = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    assert own_attribute(owner, name) is not original
    assert own_attribute(owner, name).__wrapped__ is original


@pytest.mark.parametrize(("owner", "name"), TARGETS, ids=TARGET_IDS)
def test_uninstrument_restores_the_original(
    instrumentor: LiveKitAgentsInstrumentor, owner: Any, name: str
) -> None:
    original = own_attribute(owner, name)
    provider, _, _ = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.uninstrument()
    assert own_attribute(owner, name) is original


def test_uninstrument_restores_every_hook_of_the_wrap_table(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    def resolve(module: str, attribute: str) -> tuple[Any, str]:
        owner: Any = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        return owner, name

    hooks = [resolve(hook.module, hook.attribute) for hook in HOOKS]
    originals = [own_attribute(owner, name) for owner, name in hooks]
    provider, _, _ = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.uninstrument()
    assert [own_attribute(owner, name) for owner, name in hooks] == originals
    assert all(
        own_attribute(owner, name) is original
        for (owner, name), original in zip(hooks, originals, strict=True)
    )


async def test_uninstrument_gives_livekit_its_builtin_tracer_provider_back(
    instrument: Callable[..., Tracing],
) -> None:
    before = builtin_traces.tracer._tracer_provider
    tracing = instrument()
    await run_scripted_session(TURNS[:1], mode="text")
    assert len(tracing.tree()) > 0
    assert builtin_traces.tracer._tracer_provider is not before  # silenced while traced
    tracing.instrumentor.uninstrument()
    assert builtin_traces.tracer._tracer_provider is before


async def test_instrument_twice_is_a_no_op(instrumentor: LiveKitAgentsInstrumentor) -> None:
    first, first_spans, _ = in_memory_provider()
    second, second_spans, _ = in_memory_provider()
    original = own_attribute(agent_session.AgentSession, "start")
    instrumentor.instrument(tracer_provider=first)
    instrumentor.instrument(tracer_provider=second)
    assert own_attribute(agent_session.AgentSession, "start").__wrapped__ is original
    run = await run_scripted_session(TURNS, mode="text")
    names = [span.name for span in first_spans.get_finished_spans()]
    assert names.count("agent_session") == 1
    assert names.count("llm_node") == len(run.metrics_of(LLMMetrics))
    assert names.count("agent_turn") == len(run.speech_handles)
    assert second_spans.get_finished_spans() == ()


async def test_sessions_after_uninstrument_produce_no_spans(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    provider, exporter, lifecycle = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.uninstrument()
    await run_scripted_session(TURNS, mode="audio")
    assert exporter.get_finished_spans() == ()
    assert lifecycle.started == 0


async def test_instrument_after_uninstrument_traces_again(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    provider, exporter, _ = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    await run_scripted_session(TURNS, mode="text")
    names = [span.name for span in exporter.get_finished_spans()]
    assert names.count("agent_session") == 1
    assert names.count("agent_turn") == 2


async def converse_and_uninstrument_midway(
    instrumentor: LiveKitAgentsInstrumentor,
) -> ScriptedRun:
    conv = ScriptedConversation()
    await conv.start()
    await conv.user_types("hello there")
    instrumentor.uninstrument()
    await conv.user_types("how are you")
    return await conv.aclose()


async def test_session_running_when_uninstrumented_goes_on_undisturbed(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    provider, _, _ = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    run = await converse_and_uninstrument_midway(instrumentor)
    replies = [item for item in run.history if item.get("role") == "assistant"]
    assert len(replies) == 2


async def test_uninstrument_during_a_session_ends_that_session_spans(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    provider, _, lifecycle = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider)
    await converse_and_uninstrument_midway(instrumentor)
    assert lifecycle.still_open == []


# -- set_tracer_provider ---------------------------------------------------------------------
async def test_set_tracer_provider_instruments_when_not_yet_done(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    provider, exporter, _ = in_memory_provider()
    set_tracer_provider(provider)
    assert instrumentor.is_instrumented_by_opentelemetry
    await run_scripted_session(TURNS[:1], mode="text")
    assert [span.name for span in exporter.get_finished_spans()].count("agent_session") == 1


async def test_set_tracer_provider_sends_later_sessions_to_the_new_provider(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    old, old_spans, _ = in_memory_provider()
    new, new_spans, _ = in_memory_provider()
    set_tracer_provider(old)
    await run_scripted_session(TURNS[:1], mode="text")
    set_tracer_provider(new)
    await run_scripted_session(TURNS[:1], mode="text")
    old_roots = [s for s in old_spans.get_finished_spans() if s.name == "agent_session"]
    new_roots = [s for s in new_spans.get_finished_spans() if s.name == "agent_session"]
    assert (len(old_roots), len(new_roots)) == (1, 1)


def test_set_tracer_provider_leaves_the_global_provider_alone(
    instrumentor: LiveKitAgentsInstrumentor,
) -> None:
    before = trace.get_tracer_provider()
    provider, _, _ = in_memory_provider()
    set_tracer_provider(provider)
    assert trace.get_tracer_provider() is before


def test_instrument_warns_when_the_global_exporter_speaks_grpc_to_the_http_port(
    global_tracer_provider: Callable[[trace.TracerProvider], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter("http://127.0.0.1:4318")))
    global_tracer_provider(provider)
    instrumentor = LiveKitAgentsInstrumentor()
    with caplog.at_level(logging.WARNING, logger="livekit_otel"):
        instrumentor.instrument()
    try:
        (warning,) = [r.getMessage() for r in caplog.records if "gRPC" in r.getMessage()]
        assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in warning
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
