"""The devkit's JSON-file exporter writes OTLP/JSON as the OpenTelemetry specification defines it.

The rules checked (specification, OTLP "JSON Protobuf Encoding"): trace and span ids are
hex strings, enums are integers, keys are lowerCamelCase, 64-bit integers may be decimal
strings (protobuf JSON mapping), and the file exporter format is one
``ExportTraceServiceRequest`` per line. The file is also read back into the protobuf
message and compared with the spans written.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from livekit_otel_dev.jsonfile import OtlpJsonFileExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

BIG = 2**62 + 7  # a 64-bit integer no JSON double can hold exactly
ATTRIBUTES: dict[str, Any] = {
    "lk.llm.prompt_tokens": 42,
    "lk.big": BIG,
    "lk.llm.ttft": 0.25,
    "lk.turn.interrupted": True,
    "model": "scripted-llm-1",
    "tags": ["support", "fr"],
    "text": 'line one\nline two "quoted" — ünïcode',
}


@dataclass
class Written:
    """The spans a small trace produced, and the file they were exported to."""

    path: Path
    spans: list[ReadableSpan]
    exports: int

    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines()

    def requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def json_spans(self) -> list[dict[str, Any]]:
        return [
            span
            for request in self.requests()
            for resource_spans in request["resourceSpans"]
            for scope_spans in resource_spans["scopeSpans"]
            for span in scope_spans["spans"]
        ]

    def json_span(self, name: str) -> dict[str, Any]:
        (span,) = [span for span in self.json_spans() if span["name"] == name]
        return span

    def sdk_span(self, name: str) -> ReadableSpan:
        (span,) = [span for span in self.spans if span.name == name]
        return span


class KeepingProcessor(SimpleSpanProcessor):
    """Exports each span at its end, like the demo does, and keeps it for the assertions."""

    def __init__(self, exporter: OtlpJsonFileExporter) -> None:
        super().__init__(exporter)
        self.ended: list[ReadableSpan] = []
        self.exports = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)
        self.exports += 1
        super().on_end(span)


@pytest.fixture
def written(tmp_path: Path) -> Iterator[Written]:
    """Three spans (a root, a child with an event and an error, a linked span) in a file."""
    path = tmp_path / "traces" / "demo.otlp.jsonl"
    processor = KeepingProcessor(OtlpJsonFileExporter(path))
    provider = TracerProvider(resource=Resource.create({"service.name": "jsonfile-test"}))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("livekit-otel-test", "1.2.3")
    with tracer.start_as_current_span("agent_session", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span(
            "llm_node", kind=SpanKind.CLIENT, attributes=ATTRIBUTES
        ) as child:
            child.add_event("first_token", {"lk.offset": 3})
            child.set_status(Status(StatusCode.ERROR, "model overloaded"))
        tracer.start_span("follow_up", links=[Link(root.get_span_context())]).end()
    provider.shutdown()
    yield Written(path=path, spans=processor.ended, exports=processor.exports)


def walk_keys(value: Any) -> Iterator[str]:
    """Every object key in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from walk_keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_keys(item)


def hex_ids_to_base64(item: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in item:
            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()


def read_back(line: str) -> ExportTraceServiceRequest:
    """An OTLP/JSON line parsed into the protobuf message (ids converted from hex)."""
    request = json.loads(line)
    for resource_spans in request["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                hex_ids_to_base64(span)
                for link in span.get("links", []):
                    hex_ids_to_base64(link)
    return ParseDict(request, ExportTraceServiceRequest())


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    return getattr(value, kind)


def read_back_spans(written: Written) -> dict[str, trace_pb2.Span]:
    spans: dict[str, trace_pb2.Span] = {}
    for line in written.lines():
        for resource_spans in read_back(line).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.name] = span
    return spans


# --- the specification's rules ----------------------------------------------------------


def test_each_export_is_one_line_holding_one_export_request(written: Written) -> None:
    requests = written.requests()

    assert len(requests) == written.exports == 3
    assert all(set(request) == {"resourceSpans"} for request in requests)


def test_trace_and_span_ids_are_lowercase_hex(written: Written) -> None:
    for span in written.spans:
        exported = written.json_span(span.name)
        assert exported["traceId"] == f"{span.context.trace_id:032x}"
        assert exported["spanId"] == f"{span.context.span_id:016x}"
    assert all(re.fullmatch(r"[0-9a-f]{32}", s["traceId"]) for s in written.json_spans())


def test_parent_span_id_is_hex(written: Written) -> None:
    root = written.sdk_span("agent_session")

    assert written.json_span("llm_node")["parentSpanId"] == f"{root.context.span_id:016x}"
    assert "parentSpanId" not in written.json_span("agent_session")


def test_link_ids_are_hex(written: Written) -> None:
    root = written.sdk_span("agent_session")

    (link,) = written.json_span("follow_up")["links"]

    assert link["traceId"] == f"{root.context.trace_id:032x}"
    assert link["spanId"] == f"{root.context.span_id:016x}"


def test_enums_are_integers(written: Written) -> None:
    llm = written.json_span("llm_node")

    assert llm["kind"] == trace_pb2.Span.SPAN_KIND_CLIENT
    assert written.json_span("agent_session")["kind"] == trace_pb2.Span.SPAN_KIND_SERVER
    assert llm["status"] == {
        "code": trace_pb2.Status.STATUS_CODE_ERROR,
        "message": "model overloaded",
    }


def test_keys_are_lower_camel_case(written: Written) -> None:
    keys = set(walk_keys(written.requests()))

    assert "startTimeUnixNano" in keys
    assert [key for key in keys if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", key)] == []


def test_64_bit_integers_are_decimal_strings(written: Written) -> None:
    llm = written.json_span("llm_node")
    by_key = {item["key"]: item["value"] for item in llm["attributes"]}

    assert llm["startTimeUnixNano"] == str(written.sdk_span("llm_node").start_time)
    assert by_key["lk.big"] == {"intValue": str(BIG)}


# --- read back --------------------------------------------------------------------------


def test_file_reads_back_into_the_spans_written(written: Written) -> None:
    spans = read_back_spans(written)

    assert sorted(spans) == sorted(span.name for span in written.spans)
    for sdk_span in written.spans:
        span = spans[sdk_span.name]
        assert span.trace_id == sdk_span.context.trace_id.to_bytes(16, "big")
        assert span.span_id == sdk_span.context.span_id.to_bytes(8, "big")
        assert span.start_time_unix_nano == sdk_span.start_time
        assert span.end_time_unix_nano == sdk_span.end_time


def test_attributes_read_back_with_their_types(written: Written) -> None:
    llm = read_back_spans(written)["llm_node"]

    assert {item.key: any_value(item.value) for item in llm.attributes} == ATTRIBUTES


def test_parent_event_and_link_read_back(written: Written) -> None:
    spans = read_back_spans(written)
    root = written.sdk_span("agent_session")

    assert spans["llm_node"].parent_span_id == root.context.span_id.to_bytes(8, "big")
    assert [event.name for event in spans["llm_node"].events] == ["first_token"]
    assert spans["follow_up"].links[0].span_id == root.context.span_id.to_bytes(8, "big")


def test_resource_and_scope_read_back(written: Written) -> None:
    request = read_back(written.lines()[0])
    (resource_spans,) = request.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    resource = {item.key: any_value(item.value) for item in resource_spans.resource.attributes}

    assert resource["service.name"] == "jsonfile-test"
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("livekit-otel-test", "1.2.3")


# --- what the exporter holds, and failures ----------------------------------------------


def test_exporter_keeps_no_span_after_writing(tmp_path: Path) -> None:
    exporter = OtlpJsonFileExporter(tmp_path / "t.jsonl")
    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("written")
    span.end()
    alive = weakref.ref(span)

    assert exporter.export([span]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
    del span
    gc.collect()

    assert alive() is None
    assert (tmp_path / "t.jsonl").read_text().count("\n") == 1


def test_unwritable_file_is_a_failed_export_and_one_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "is-a-folder.jsonl"
    exporter = OtlpJsonFileExporter(folder)
    folder.mkdir()
    span = TracerProvider().get_tracer("t").start_span("lost")
    span.end()

    with caplog.at_level(logging.DEBUG):
        result = exporter.export([span])  # type: ignore[list-item]

    assert result is SpanExportResult.FAILURE
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert str(folder) in record.getMessage()


def test_export_after_shutdown_fails(tmp_path: Path) -> None:
    exporter = OtlpJsonFileExporter(tmp_path / "t.jsonl")
    span = TracerProvider().get_tracer("t").start_span("late")
    span.end()

    exporter.shutdown()

    assert exporter.export([span]) is SpanExportResult.FAILURE  # type: ignore[list-item]
    assert not (tmp_path / "t.jsonl").exists()
