"""While an ``llm_node``, ``function_tool`` or ``tts_node`` span is open, it is the current span.

So what runs inside it (an HTTP client's span, a user's own span, a model plugin's call)
nests under it in the same trace, and none of our spans stays current outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from livekit import rtc
from livekit.agents import Agent, FlushSentinel, ModelSettings, function_tool, llm, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit_otel_dev.scripted import (
    ScriptedAgent,
    ScriptedConversation,
    ScriptedLLM,
    ScriptedTTS,
    ToolCall,
    UserTurn,
)
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan

from support.tracing import TracedRun, Tracing, output_of, span_id, trace_session

FORECAST = ToolCall("fetch_forecast", {"location": "Paris"})
WEATHER = ToolCall("lookup_weather", {"location": "Paris"})


@pytest.fixture
async def forecast_url() -> AsyncIterator[str]:
    """A local HTTP service on 127.0.0.1 answering ``GET /forecast``; yields its URL."""

    async def forecast(request: web.Request) -> web.Response:
        return web.Response(text=f"sunny in {request.query.get('location', 'nowhere')}")

    app = web.Application()
    app.router.add_get("/forecast", forecast)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/forecast"
    finally:
        await runner.cleanup()


@pytest.fixture
def http_tracing(tracing: Tracing) -> Iterator[Tracing]:
    """aiohttp's client instrumented on the same provider as livekit-otel."""
    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=tracing.provider)
    try:
        yield tracing
    finally:
        instrumentor.uninstrument()


class ForecastAgent(Agent):
    """An agent whose tool opens a span of its own, then calls a real HTTP service."""

    def __init__(self, url: str, tracer: trace.Tracer) -> None:
        super().__init__(instructions="You give weather forecasts.")
        self.url = url
        self.tracer = tracer

    @function_tool
    async def fetch_forecast(self, location: str) -> str:
        """Fetch the weather forecast for a location.

        Args:
            location: The city to fetch the forecast for.
        """
        with self.tracer.start_as_current_span("normalize_location"):
            city = location.strip().title()
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.url, params={"location": city}) as response,
        ):
            return await response.text()


@pytest.fixture
async def forecast_session(http_tracing: Tracing, forecast_url: str) -> TracedRun:
    agent = ForecastAgent(forecast_url, http_tracing.provider.get_tracer("app"))
    return await trace_session(
        http_tracing, [UserTurn("forecast for Paris", reply=FORECAST)], agent=agent, mode="text"
    )


def http_client_span(traced: TracedRun) -> ReadableSpan:
    (span,) = [
        span
        for span in traced.tree
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name.endswith("aiohttp_client")
    ]
    return span


async def test_http_request_made_by_a_tool_is_a_child_of_function_tool(
    forecast_session: TracedRun,
) -> None:
    tree = forecast_session.tree
    assert tree.parent_of(http_client_span(forecast_session)) is tree.one("function_tool")


async def test_http_request_made_by_a_tool_is_in_the_session_trace(
    forecast_session: TracedRun,
) -> None:
    tree = forecast_session.tree
    assert len(tree.trace_ids()) == 1
    assert output_of(tree.one("function_tool")) == "sunny in Paris"


async def test_user_span_started_in_a_tool_nests_under_function_tool(
    forecast_session: TracedRun,
) -> None:
    tree = forecast_session.tree
    assert tree.parent_of(tree.one("normalize_location")) is tree.one("function_tool")


# -- the nodes ---------------------------------------------------------------------------------
class TracingNodesAgent(ScriptedAgent):
    """Overrides both nodes, opening a span of its own in each, then delegates to LiveKit."""

    def __init__(self, tracer: trace.Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str | FlushSentinel]:
        with self.tracer.start_as_current_span("choose_prompt"):
            chat_ctx = chat_ctx.copy()
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterable[rtc.AudioFrame]:
        with self.tracer.start_as_current_span("choose_voice"):
            pass
        async for frame in Agent.default.tts_node(self, text, model_settings):
            yield frame


async def test_user_span_in_an_overridden_llm_node_nests_under_llm_node(
    tracing: Tracing,
) -> None:
    agent = TracingNodesAgent(tracing.provider.get_tracer("app"))
    traced = await trace_session(tracing, [UserTurn("hello there")], agent=agent, mode="text")
    parent = traced.tree.parent_of(traced.tree.one("choose_prompt"))
    assert parent is traced.tree.one("llm_node")


async def test_user_span_in_an_overridden_tts_node_nests_under_tts_node(
    tracing: Tracing,
) -> None:
    agent = TracingNodesAgent(tracing.provider.get_tracer("app"))
    traced = await trace_session(tracing, [UserTurn("hello there")], agent=agent, mode="text")
    parent = traced.tree.parent_of(traced.tree.one("choose_voice"))
    assert parent is traced.tree.one("tts_node")


class WatchedLLM(ScriptedLLM):
    """Records the current span each time LiveKit asks it for a chat stream."""

    def __init__(self, script: list[ToolCall]) -> None:
        super().__init__(script)
        self.current_spans: list[int] = []

    def chat(self, *, chat_ctx: llm.ChatContext, **kwargs: Any) -> Any:
        self.current_spans.append(trace.get_current_span().get_span_context().span_id)
        return super().chat(chat_ctx=chat_ctx, **kwargs)


class WatchedTTS(ScriptedTTS):
    """Records the current span each time LiveKit asks it to synthesize."""

    def __init__(self) -> None:
        super().__init__()
        self.current_spans: list[int] = []

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.current_spans.append(trace.get_current_span().get_span_context().span_id)
        return super().synthesize(text, conn_options=conn_options)


async def test_model_plugin_calls_run_inside_their_llm_node(tracing: Tracing) -> None:
    model = WatchedLLM([WEATHER])  # a tool call, then the answer: two inferences
    conv = ScriptedConversation(llm=model)
    await conv.start()
    await conv.user_types("weather in Paris?")
    await conv.aclose()
    nodes = tracing.tree().named("llm_node")
    assert len(nodes) == 2
    assert model.current_spans == [span_id(node) for node in nodes]


async def test_tts_plugin_calls_run_inside_their_tts_node(tracing: Tracing) -> None:
    voice = WatchedTTS()
    conv = ScriptedConversation(tts=voice)
    await conv.start()
    await conv.user_types("hello there")
    await conv.aclose()
    (node,) = tracing.tree().named("tts_node")
    assert voice.current_spans
    assert set(voice.current_spans) == {span_id(node)}


async def test_no_turn_or_node_span_stays_current_in_the_caller(tracing: Tracing) -> None:
    traced = await trace_session(tracing, [UserTurn("weather?", reply=WEATHER)], mode="audio")
    current = trace.get_current_span().get_span_context().span_id
    # LiveKit keeps the session context it attached in AgentSession.start() current in the
    # caller: at most the agent_session span may show through it
    inner = {span_id(span) for span in traced.tree if span.name != "agent_session"}
    assert current not in inner
