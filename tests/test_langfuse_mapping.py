"""What Langfuse shows for a traced voice session, exported through ``setup_langfuse``.

Each test runs a scripted audio session (a real ``AgentSession``), exports it with
``setup_langfuse`` to a local OTLP receiver at Langfuse's path with Basic auth, and maps
the received spans with Langfuse's ingestion rules (``support.langfuse_mapper``).
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest
from livekit.agents import AgentSession
from livekit.agents.metrics import LLMMetrics
from livekit_otel_dev.otlp_receiver import OtlpReceiver, ReceivedSpan
from livekit_otel_dev.scripted import (
    ScriptedConversation,
    ScriptedLLM,
    ScriptedRun,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, setup_langfuse, update_session
from livekit_otel.setup import bootstrap
from support.langfuse_mapper import (
    LANGFUSE_OTEL_PATH,
    LangfuseObservation,
    LangfuseView,
    map_span,
    map_spans,
)
from support.shapes import tts_nodes_per_reply

PUBLIC_KEY = "pk-lf-mapping-test"
SECRET_KEY = "sk-lf-mapping-test"
AUTHORIZATION = "Basic " + base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()

GREETING = "hello there"
QUESTION = "what is the weather in Paris?"
WEATHER_ARGUMENTS = {"location": "Paris"}
WEATHER_RESULT = "It is sunny and 21 degrees in Paris"
_MS = 1_000_000  # one millisecond in nanoseconds: clock rounding between span and attribute
SCRIPT = (
    UserTurn(GREETING),
    UserTurn(QUESTION, reply=ToolCall("lookup_weather", WEATHER_ARGUMENTS)),
)


@dataclass
class Export:
    """A scripted session, the spans the receiver accepted and what Langfuse shows."""

    run: ScriptedRun
    spans: list[ReceivedSpan]
    view: LangfuseView
    receiver: OtlpReceiver

    @property
    def llm_metrics(self) -> dict[str, LLMMetrics]:
        """The session's LLM metrics by request id."""
        return {metrics.request_id: metrics for metrics in self.run.metrics_of(LLMMetrics)}

    def metrics_of(self, generation: LangfuseObservation) -> LLMMetrics:
        """The LLM metrics of the inference a generation records."""
        return self.llm_metrics[generation.attributes["lk.llm.request_id"]]

    @property
    def assistant_texts(self) -> list[str]:
        """What the agent said, one entry per reply, from the session's chat history."""
        return [
            " ".join(item["content"])
            for item in self.run.history
            if item.get("type") == "message" and item.get("role") == "assistant"
        ]

    def generations_of(self, user_text: str) -> list[LangfuseObservation]:
        """The generations of the agent turn that answers ``user_text``, in order."""
        (turn,) = [obs for obs in self.view.named("agent_turn") if obs.input == user_text]
        return [obs for obs in self.view.named("llm_node") if obs.parent_id == turn.id]


Exporter = Callable[..., Awaitable[Export]]
SetUp = Callable[..., TracerProvider]


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def langfuse_setup(otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[SetUp]:
    """``setup(**instrument_options)``: ``setup_langfuse`` pointed at the receiver.

    The receiver answers 401 unless a request carries Langfuse's Basic auth. No
    ``OTEL_*``, ``LANGFUSE_*`` or ``LIVEKIT_OTEL_*`` variable applies; the instrumentation
    is undone and the providers shut down after the test.
    """
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(bootstrap, "_installed", None)
    otlp_receiver.require_header("authorization", AUTHORIZATION)
    _uninstrument()
    providers: list[TracerProvider] = []

    def setup(**instrument_options: Any) -> TracerProvider:
        provider = setup_langfuse(
            host=otlp_receiver.url,
            public_key=PUBLIC_KEY,
            secret_key=SECRET_KEY,
            instrument_options=instrument_options or None,
        )
        providers.append(provider)
        return provider

    try:
        yield setup
    finally:
        _uninstrument()
        for provider in providers:
            provider.shutdown()


@pytest.fixture
def export_to_langfuse(langfuse_setup: SetUp, otlp_receiver: OtlpReceiver) -> Exporter:
    """``await export(turns, on_session=None, **instrument_options)``: run and map a session."""

    async def export(
        turns: Sequence[UserTurn | str] = SCRIPT,
        on_session: Callable[[AgentSession], None] | None = None,
        **instrument_options: Any,
    ) -> Export:
        provider = langfuse_setup(**instrument_options)
        run = await run_scripted_session(turns, mode="audio", on_session=on_session)
        assert provider.force_flush(10_000)
        spans = otlp_receiver.spans
        return Export(run, spans, map_spans(spans), otlp_receiver)

    return export


def _json(value: Any) -> Any:
    assert isinstance(value, str), f"expected a JSON string, got {value!r}"
    return json.loads(value)


# -- transport ----------------------------------------------------------------------------
async def test_spans_reach_langfuses_otel_path_with_basic_auth(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    assert export.spans
    assert {request.path for request in export.receiver.requests} == {LANGFUSE_OTEL_PATH}
    assert {request.status for request in export.receiver.requests} == {200}
    assert {span.headers["authorization"] for span in export.spans} == {AUTHORIZATION}


async def test_langfuse_keeps_every_span(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse()

    assert export.view.dropped == []
    assert len(export.view.observations) == len(export.spans)


# -- traces and sessions ------------------------------------------------------------------
async def test_a_session_is_one_trace_named_agent_session(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse()

    assert [trace.name for trace in export.view.traces.values()] == ["agent_session"]
    assert all(trace.has_root for trace in export.view.traces.values())


async def test_every_observation_carries_the_session_id_of_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (trace,) = export.view.traces.values()
    assert trace.session_id
    assert {obs.session_id for obs in export.view.observations} == {trace.session_id}


async def test_trace_per_turn_gives_one_trace_per_turn_sharing_one_session(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    names = Counter(trace.name for trace in export.view.traces.values())
    assert names == {"agent_session": 1, "agent_turn": 2}
    assert all(trace.has_root for trace in export.view.traces.values())
    (session,) = export.view.session_ids
    assert session
    assert {obs.session_id for obs in export.view.observations} == {session}


async def test_trace_per_turn_puts_each_user_utterance_in_the_trace_of_its_reply(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    user_turns = export.view.named("user_turn")
    assert len(user_turns) == 2
    for obs in user_turns:
        parent = export.view.by_id(obs.parent_id or "")
        assert parent is not None and parent.name == "agent_turn"
        assert parent.trace_id == obs.trace_id


async def test_trace_per_turn_keeps_a_replys_generations_tools_and_speech_in_its_turn_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(trace_per="turn")

    for name in ("llm_node", "function_tool", "tts_node"):
        for obs in export.view.named(name):
            parent = export.view.by_id(obs.parent_id or "")
            assert parent is not None and parent.span_name == "agent_turn"
            assert export.view.trace_of(obs).name == "agent_turn"
            assert parent.trace_id == obs.trace_id


# -- generations --------------------------------------------------------------------------
async def test_every_llm_node_is_a_generation_with_the_llm_model(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    llm = export.run.session.llm
    assert isinstance(llm, ScriptedLLM)

    generations = export.view.named("llm_node")
    assert len(generations) == len(export.llm_metrics) == 3
    assert export.view.of_type("generation") == generations
    assert {obs.model for obs in generations} == {llm.model}


async def test_generation_usage_equals_the_llm_metrics_with_cached_tokens_as_their_own_type(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    for generation in export.view.named("llm_node"):
        metrics = export.metrics_of(generation)
        assert metrics.prompt_cached_tokens > 0
        assert generation.usage == {
            "input": metrics.prompt_tokens - metrics.prompt_cached_tokens,
            "input_cached_tokens": metrics.prompt_cached_tokens,
            "output": metrics.completion_tokens,
            "total": metrics.prompt_tokens + metrics.completion_tokens,
        }


async def test_session_usage_in_langfuse_equals_the_llm_metrics_total(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    with_usage = [obs for obs in export.view.observations if obs.usage]
    assert {obs.span_name for obs in with_usage} == {"llm_node"}
    assert sum(obs.usage["total"] for obs in with_usage) == sum(
        metrics.total_tokens for metrics in export.llm_metrics.values()
    )


async def test_usage_total_without_openinference_counts_cached_tokens_once(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(conventions="langfuse")

    for generation in export.view.named("llm_node"):
        assert "llm.token_count.total" not in generation.attributes
        metrics = export.metrics_of(generation)
        assert generation.usage["total"] == metrics.prompt_tokens + metrics.completion_tokens


async def test_generation_completion_start_time_is_an_iso_time_with_zone_inside_the_span(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    for generation in export.view.named("llm_node"):
        text = generation.completion_start_time
        assert text is not None and text.endswith("+00:00")
        first_token_ns = int(datetime.fromisoformat(text).timestamp() * 1_000_000_000)
        assert generation.start_ns - _MS <= first_token_ns <= generation.end_ns + _MS


async def test_generation_input_is_the_chat_messages_and_output_the_reply(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    calling, answering = export.generations_of(QUESTION)
    assert {"role": "user", "content": QUESTION} in _json(calling.input)
    (call,) = _json(calling.output)["tool_calls"]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGUMENTS
    reply = _json(answering.output)
    assert reply["role"] == "assistant" and WEATHER_RESULT in reply["content"]


# -- tools, turns and speech --------------------------------------------------------------
async def test_every_function_tool_is_a_tool_named_after_it_with_arguments_and_result(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (tool,) = export.view.named("function_tool")
    assert export.view.of_type("tool") == [tool]
    assert tool.name == "lookup_weather"
    assert _json(tool.input) == WEATHER_ARGUMENTS
    assert tool.output == WEATHER_RESULT
    assert tool.level == "DEFAULT"


async def test_a_failing_tool_is_an_error_level_tool(export_to_langfuse: Exporter) -> None:
    booking = ToolCall("book_table", {"restaurant": "Chez Nous", "people": 4})
    export = await export_to_langfuse([UserTurn("book a table for four", reply=booking)])

    (tool,) = export.view.named("function_tool")
    assert tool.type == "tool" and tool.name == "book_table"
    assert tool.level == "ERROR"
    assert tool.status_message and "Chez Nous" in tool.status_message


async def test_user_turn_and_tts_node_are_spans_without_a_model(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    speech = export.view.named("user_turn") + export.view.named("tts_node")
    assert len(speech) == len(SCRIPT) + tts_nodes_per_reply(0) + tts_nodes_per_reply(1)
    for obs in speech:
        assert obs.type == "span", obs.span_name
        assert obs.model is None and obs.usage == {}


async def test_agent_turn_shows_the_user_text_in_and_the_agent_text_out(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    turns = export.view.named("agent_turn")
    assert [obs.type for obs in turns] == ["agent", "agent"]
    assert [obs.input for obs in turns] == [GREETING, QUESTION]
    assert [obs.output for obs in turns] == export.assistant_texts


async def test_the_trace_input_is_the_first_user_text_and_output_the_last_agent_text(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()

    (trace,) = export.view.traces.values()
    assert trace.input == GREETING
    assert trace.output == export.view.named("agent_turn")[-1].output


async def test_with_content_capture_off_langfuse_shows_no_input_or_output(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(capture_content=False)

    assert [(o.span_name, o.input, o.output) for o in export.view.observations if o.input] == []
    assert [(o.span_name, o.output) for o in export.view.observations if o.output] == []
    assert [(t.input, t.output) for t in export.view.traces.values()] == [(None, None)]


# -- user, tags and metadata --------------------------------------------------------------
async def test_update_session_before_start_sets_user_tags_and_metadata_on_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    def label(session: AgentSession) -> None:
        update_session(
            session, user_id="caller-42", tags=["voice", "beta"], metadata={"plan": "pro"}
        )

    export = await export_to_langfuse(on_session=label)

    (trace,) = export.view.traces.values()
    assert trace.user_id == "caller-42"
    assert trace.tags == ["voice", "beta"]
    assert trace.metadata == {"plan": "pro"}


async def test_update_session_before_start_puts_the_user_id_on_every_observation(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(
        on_session=lambda session: update_session(session, user_id="caller-42")
    )

    assert {obs.user_id for obs in export.view.observations} == {"caller-42"}


async def test_update_session_during_the_call_sets_user_tags_and_metadata_on_the_trace(
    langfuse_setup: SetUp, otlp_receiver: OtlpReceiver
) -> None:
    provider = langfuse_setup()
    conversation = ScriptedConversation()
    await conversation.start()
    await conversation.user_says(UserTurn(GREETING))
    update_session(
        conversation.session, user_id="late-caller", tags=["escalated"], metadata={"tier": 2}
    )
    await conversation.user_says(UserTurn(QUESTION))
    await conversation.aclose()
    assert provider.force_flush(10_000)
    view = map_spans(otlp_receiver.spans)

    (trace,) = view.traces.values()
    assert trace.user_id == "late-caller"
    assert trace.tags == ["escalated"]
    assert trace.metadata == {"tier": 2}


async def test_instrument_options_set_user_tags_and_metadata_on_the_trace(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(
        user_id="default-user", tags=["prod"], metadata={"region": "eu"}
    )

    (trace,) = export.view.traces.values()
    assert trace.user_id == "default-user"
    assert trace.tags == ["prod"]
    assert trace.metadata == {"region": "eu"}


async def test_tags_set_before_start_join_the_default_tags(export_to_langfuse: Exporter) -> None:
    export = await export_to_langfuse(
        tags=["prod"], on_session=lambda session: update_session(session, tags=["voice"])
    )

    (trace,) = export.view.traces.values()
    assert trace.tags == ["prod", "voice"]


async def test_tags_set_during_the_call_join_the_default_tags(
    langfuse_setup: SetUp, otlp_receiver: OtlpReceiver
) -> None:
    provider = langfuse_setup(tags=["prod"])
    conversation = ScriptedConversation()
    await conversation.start()
    await conversation.user_says(UserTurn(GREETING))
    update_session(conversation.session, tags=["escalated"])
    await conversation.aclose()
    assert provider.force_flush(10_000)

    (trace,) = map_spans(otlp_receiver.spans).traces.values()
    assert trace.tags == ["prod", "escalated"]


# -- the Langfuse rules the plugin steers clear of ---------------------------------------
async def test_a_completion_start_time_without_zone_would_drop_the_generation(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse()
    span = next(span for span in export.spans if span.name == "llm_node")
    sent = span.attributes["langfuse.observation.completion_start_time"]
    naive = replace(
        span,
        attributes={
            **span.attributes,
            "langfuse.observation.completion_start_time": sent.removesuffix("+00:00"),
        },
    )

    assert map_span(span)[1] is None
    assert map_span(naive)[1] is not None and "time zone" in str(map_span(naive)[1])


async def test_an_unrecognised_usage_key_would_be_an_extra_bucket_added_to_the_total(
    export_to_langfuse: Exporter,
) -> None:
    export = await export_to_langfuse(conventions="langfuse")
    span = next(span for span in export.spans if span.name == "llm_node")
    cached = span.attributes["gen_ai.usage.cache_read.input_tokens"]
    extra = replace(
        span, attributes={**span.attributes, "gen_ai.usage.prompt_cached_tokens": cached}
    )

    usage = map_span(extra)[0].usage
    assert usage["prompt_cached_tokens"] == cached
    assert usage["total"] == map_span(span)[0].usage["total"] + cached
