"""Smoke test: a plain OpenTelemetry SDK trace exported to a real Phoenix and read back.

It checks the path the real end-to-end tests rely on (OTLP/HTTP export, project routing
through the `openinference.project.name` resource attribute, REST read-back) and pins down
how Phoenix reports span kinds, status, input/output and token counts.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, format_trace_id

from support.phoenix import PhoenixServer, phoenix  # noqa: F401  (fixture re-export)

PROJECT = "livekit-otel-smoke"


@pytest.mark.e2e
def test_three_span_trace_round_trips_through_phoenix(phoenix: PhoenixServer) -> None:  # noqa: F811
    """Export root → (LLM, TOOL) and assert tree, kinds, status, I/O and token counts."""
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "livekit-otel-smoke", "openinference.project.name": PROJECT}
        )
    )
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=phoenix.otlp_traces_endpoint))
    )
    tracer = provider.get_tracer("livekit-otel-smoke-test")

    with tracer.start_as_current_span("agent_turn") as root:
        root.set_attribute("lk.tags", ["voice", "smoke"])
        root.set_attribute("lk.turn_index", 1)
        with tracer.start_as_current_span("llm_node") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("input.value", "What is the weather in Paris?")
            llm.set_attribute("output.value", "Let me look that up.")
            llm.set_attribute("llm.model_name", "gpt-4o-mini")
            llm.set_attribute("llm.token_count.prompt", 12)
            llm.set_attribute("llm.token_count.completion", 5)
            llm.set_attribute("llm.token_count.total", 17)
            llm.set_attribute("session.id", "room-smoke-1")
            llm.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("get_weather", record_exception=False) as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "get_weather")
            tool.set_attribute("input.value", '{"city": "Paris"}')
            tool.record_exception(ValueError("no weather today"))
            tool.set_status(Status(StatusCode.ERROR, "no weather today"))
        trace_id = format_trace_id(root.get_span_context().trace_id)

    exported_at = time.monotonic()
    assert provider.force_flush(10_000)
    spans = phoenix.spans(trace_id, project=PROJECT, expect=3, timeout=30)
    readable_after = time.monotonic() - exported_at
    provider.shutdown()
    print(
        f"phoenix: started in {phoenix.startup_seconds:.1f}s, "
        f"spans readable {readable_after:.2f}s after force_flush began"
    )

    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"agent_turn", "llm_node", "get_weather"}
    root_span = by_name["agent_turn"]
    llm_span = by_name["llm_node"]
    tool_span = by_name["get_weather"]

    # Tree: hex span ids, root has parent_id None.
    assert root_span["parent_id"] is None
    assert llm_span["parent_id"] == root_span["span_id"]
    assert tool_span["parent_id"] == root_span["span_id"]
    assert {span["trace_id"] for span in spans} == {trace_id}
    assert all(span["context"]["span_id"] == span["span_id"] for span in spans)

    # Kinds: taken from openinference.span.kind (and removed from attributes), else UNKNOWN.
    assert root_span["span_kind"] == "UNKNOWN"
    assert llm_span["span_kind"] == "LLM"
    assert tool_span["span_kind"] == "TOOL"
    assert "openinference.span.kind" not in llm_span["attributes"]

    # Status.
    assert root_span["status_code"] == "UNSET"
    assert llm_span["status_code"] == "OK"
    assert tool_span["status_code"] == "ERROR"
    assert tool_span["status_message"] == "no weather today"

    # Attributes: flat dotted keys, JSON types preserved.
    attrs = llm_span["attributes"]
    assert attrs["input.value"] == "What is the weather in Paris?"
    assert attrs["output.value"] == "Let me look that up."
    assert attrs["llm.model_name"] == "gpt-4o-mini"
    assert attrs["llm.token_count.prompt"] == 12
    assert attrs["llm.token_count.completion"] == 5
    assert attrs["llm.token_count.total"] == 17
    assert attrs["session.id"] == "room-smoke-1"
    assert root_span["attributes"]["lk.tags"] == ["voice", "smoke"]
    assert root_span["attributes"]["lk.turn_index"] == 1
    assert tool_span["attributes"]["tool.name"] == "get_weather"

    # The recorded exception arrives as an event.
    assert [event["name"] for event in tool_span["events"]] == ["exception"]
    exception_attrs = tool_span["events"][0]["attributes"]
    assert exception_attrs["exception.type"] == "ValueError"
    assert exception_attrs["exception.message"] == "no weather today"

    # The project is addressable for UI links.
    assert phoenix.trace_url(trace_id, PROJECT).endswith(f"/traces/{trace_id}")
