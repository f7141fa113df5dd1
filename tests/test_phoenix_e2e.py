"""A traced voice session exported to a real Arize Phoenix and read back through its REST API.

One scripted audio session (a greeting, then a question answered with a tool call) is
exported once per module with ``setup_otlp`` to Phoenix's OTLP/HTTP endpoint, routed to
its own project by the ``openinference.project.name`` resource attribute; each test
checks one thing Phoenix shows: the tree, the span kinds, input and output values, token
counts.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents.metrics import LLMMetrics
from livekit_otel_dev.scripted import (
    ScriptedLLM,
    ScriptedRun,
    ToolCall,
    UserTurn,
    run_scripted_session,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from livekit_otel import LiveKitAgentsInstrumentor, setup_otlp
from livekit_otel.setup import installed as setup_state
from support.phoenix import PhoenixServer

pytestmark = pytest.mark.e2e

PROJECT = "livekit-otel-e2e"
GREETING = "hello there"
QUESTION = "what is the weather in Paris?"
WEATHER_ARGUMENTS = {"location": "Paris"}
WEATHER_RESULT = "It is sunny and 21 degrees in Paris"
SCRIPT = (
    UserTurn(GREETING),
    UserTurn(QUESTION, reply=ToolCall("lookup_weather", WEATHER_ARGUMENTS)),
)
Span = dict[str, Any]


@dataclass(frozen=True)
class PhoenixTrace:
    """The scripted session, what was exported, and the spans Phoenix returns for it."""

    run: ScriptedRun
    trace_id: str
    exported_names: Counter[str]
    spans: list[Span]

    def named(self, name: str) -> list[Span]:
        """Phoenix's spans called ``name``, oldest start first."""
        return [span for span in self.spans if span["name"] == name]

    def by_id(self, span_id: str | None) -> Span | None:
        """The span with this (hex) span id."""
        for span in self.spans:
            if span["span_id"] == span_id:
                return span
        return None

    def parent(self, span: Span) -> Span | None:
        """The parent span Phoenix links ``span`` to."""
        return self.by_id(span["parent_id"])

    def turn_answering(self, user_text: str) -> Span:
        """The ``agent_turn`` whose input is ``user_text``."""
        (turn,) = [
            span
            for span in self.named("agent_turn")
            if span["attributes"].get("input.value") == user_text
        ]
        return turn

    def children(self, span: Span, name: str) -> list[Span]:
        """The children of ``span`` called ``name``, oldest start first."""
        return [child for child in self.named(name) if child["parent_id"] == span["span_id"]]

    @property
    def llm_metrics(self) -> dict[str, LLMMetrics]:
        """The session's LLM metrics by request id."""
        return {metrics.request_id: metrics for metrics in self.run.metrics_of(LLMMetrics)}


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture(scope="module")
def phoenix_trace(phoenix: PhoenixServer) -> PhoenixTrace:
    """Export the scripted session to Phoenix once and read its spans back."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("OTEL_", "LIVEKIT_OTEL_")):
                patch.delenv(name)
        patch.setattr(setup_state, "_installed", None)
        _uninstrument()
        provider = setup_otlp(
            phoenix.otlp_traces_endpoint,
            headers={},
            service_name="livekit-otel-e2e",
            metrics=False,  # Phoenix takes traces only
            resource_attributes={"openinference.project.name": PROJECT},
        )
        sent = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(sent))
        try:
            run = asyncio.run(run_scripted_session(SCRIPT, mode="audio"))
            assert provider.force_flush(10_000)
        finally:
            _uninstrument()
            provider.shutdown()
    exported = sent.get_finished_spans()
    trace_ids = {span.context.trace_id for span in exported if span.context is not None}
    assert len(trace_ids) == 1, f"expected one trace, got {len(trace_ids)}"
    trace_id = format_trace_id(trace_ids.pop())
    spans = phoenix.spans(trace_id, project=PROJECT, expect=len(exported), timeout=30)
    return PhoenixTrace(run, trace_id, Counter(span.name for span in exported), spans)


def _json(value: Any) -> Any:
    assert isinstance(value, str), f"expected a JSON string, got {value!r}"
    return json.loads(value)


# -- storage and tree ---------------------------------------------------------------------
def test_every_exported_span_is_stored_in_the_chosen_project(phoenix_trace: PhoenixTrace) -> None:
    assert Counter(span["name"] for span in phoenix_trace.spans) == phoenix_trace.exported_names
    assert {span["trace_id"] for span in phoenix_trace.spans} == {phoenix_trace.trace_id}


def test_agent_session_is_the_only_root(phoenix_trace: PhoenixTrace) -> None:
    roots = [span for span in phoenix_trace.spans if span["parent_id"] is None]

    assert [span["name"] for span in roots] == ["agent_session"]


def test_session_and_turn_spans_are_children_of_agent_session(
    phoenix_trace: PhoenixTrace,
) -> None:
    (root,) = phoenix_trace.named("agent_session")

    for name, count in (
        ("session_start", 1),
        ("user_turn", 2),
        ("agent_turn", 2),
        ("session_close", 1),
    ):
        assert len(phoenix_trace.children(root, name)) == count, name


def test_end_of_turn_is_a_child_of_its_user_turn(phoenix_trace: PhoenixTrace) -> None:
    ends = phoenix_trace.named("end_of_turn")

    assert len(ends) == 2
    for end in ends:
        parent = phoenix_trace.parent(end)
        assert parent is not None and parent["name"] == "user_turn"
        assert end["attributes"]["lk.speech_id"] == parent["attributes"]["lk.speech_id"]


def test_llm_tool_and_tts_spans_are_children_of_the_agent_turn_they_serve(
    phoenix_trace: PhoenixTrace,
) -> None:
    greeting = phoenix_trace.turn_answering(GREETING)
    question = phoenix_trace.turn_answering(QUESTION)

    assert len(phoenix_trace.children(greeting, "llm_node")) == 1
    assert len(phoenix_trace.children(greeting, "tts_node")) == 1
    assert len(phoenix_trace.children(question, "llm_node")) == 2
    assert len(phoenix_trace.children(question, "function_tool")) == 1
    assert len(phoenix_trace.children(question, "tts_node")) == 1


# -- span kinds ---------------------------------------------------------------------------
def test_span_kinds_follow_openinference(phoenix_trace: PhoenixTrace) -> None:
    kinds = {
        (span["name"], span["span_kind"])
        for span in phoenix_trace.spans
        if span["name"] not in ("session_start", "session_close")
    }

    assert kinds == {
        ("agent_session", "AGENT"),
        ("agent_turn", "AGENT"),
        ("llm_node", "LLM"),
        ("function_tool", "TOOL"),
        ("user_turn", "CHAIN"),
        ("end_of_turn", "CHAIN"),
        ("tts_node", "CHAIN"),
    }


# -- input and output ---------------------------------------------------------------------
def test_llm_node_input_is_the_chat_messages_and_output_the_assistant_message(
    phoenix_trace: PhoenixTrace,
) -> None:
    calling, answering = phoenix_trace.children(phoenix_trace.turn_answering(QUESTION), "llm_node")

    assert calling["attributes"]["input.mime_type"] == "application/json"
    assert {"role": "user", "content": QUESTION} in _json(calling["attributes"]["input.value"])
    (call,) = _json(calling["attributes"]["output.value"])["tool_calls"]
    assert call["function"]["name"] == "lookup_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER_ARGUMENTS
    assert answering["attributes"]["output.mime_type"] == "application/json"
    reply = _json(answering["attributes"]["output.value"])
    assert reply["role"] == "assistant" and WEATHER_RESULT in reply["content"]


def test_function_tool_input_is_its_arguments_and_output_its_result(
    phoenix_trace: PhoenixTrace,
) -> None:
    (tool,) = phoenix_trace.named("function_tool")

    assert tool["attributes"]["tool.name"] == "lookup_weather"
    assert _json(tool["attributes"]["input.value"]) == WEATHER_ARGUMENTS
    assert tool["attributes"]["output.value"] == WEATHER_RESULT


def test_agent_turn_input_is_the_user_text_and_output_the_agent_text(
    phoenix_trace: PhoenixTrace,
) -> None:
    said = [
        " ".join(item["content"])
        for item in phoenix_trace.run.history
        if item.get("type") == "message" and item.get("role") == "assistant"
    ]

    turns = phoenix_trace.named("agent_turn")
    assert [turn["attributes"]["input.value"] for turn in turns] == [GREETING, QUESTION]
    assert [turn["attributes"]["output.value"] for turn in turns] == said


# -- tokens and model ---------------------------------------------------------------------
def test_llm_token_counts_equal_the_llm_metrics(phoenix_trace: PhoenixTrace) -> None:
    generations = phoenix_trace.named("llm_node")

    assert len(generations) == len(phoenix_trace.llm_metrics) == 3
    for span in generations:
        attributes = span["attributes"]
        metrics = phoenix_trace.llm_metrics[attributes["lk.llm.request_id"]]
        assert attributes["llm.token_count.prompt"] == metrics.prompt_tokens
        assert attributes["llm.token_count.completion"] == metrics.completion_tokens
        assert attributes["llm.token_count.total"] == metrics.total_tokens
        assert (
            attributes["llm.token_count.prompt_details.cache_read"] == metrics.prompt_cached_tokens
        )


def test_llm_node_names_the_model_and_provider(phoenix_trace: PhoenixTrace) -> None:
    llm = phoenix_trace.run.session.llm
    assert isinstance(llm, ScriptedLLM)

    for span in phoenix_trace.named("llm_node"):
        assert span["attributes"]["llm.model_name"] == llm.model
        assert span["attributes"]["llm.provider"] == llm.provider


def test_every_span_carries_the_session_id(phoenix_trace: PhoenixTrace) -> None:
    session_ids = {span["attributes"].get("session.id") for span in phoenix_trace.spans}

    assert len(session_ids) == 1 and None not in session_ids
