"""setup_file writes a real session's spans as OTLP/JSON lines, and ``python -m
livekit_otel.view`` reads them back as the console's span tree and latency table."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import LiveKitAgentsInstrumentor, setup_file
from livekit_otel.setup import installed as setup_state
from livekit_otel.terminal import latency_table, span_tree
from livekit_otel.view import main as view_main
from support.setup_fixtures import FakeJobContext

TURNS = [
    UserTurn("hello there"),
    UserTurn(
        "what is the weather in Paris", reply=ToolCall("lookup_weather", {"location": "Paris"})
    ),
]


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture(autouse=True)
def clean_setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TracerProvider]]:
    """No setup installed, no variable of ours set, nothing instrumented; afterwards undone."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    _uninstrument()
    built: list[TracerProvider] = []
    yield built
    _uninstrument()
    if setup_state._installed is not None:
        setup_state._installed.provider.shutdown()


async def traced_to_file(path: Path | None) -> list[ReadableSpan]:
    """Run the scripted call with ``setup_file(path)``; return the spans as the provider had
    them (an in-memory copy beside the file)."""
    provider = setup_file(path)
    copy = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(copy))
    await run_scripted_session(TURNS, mode="audio")
    provider.force_flush()
    return list(copy.get_finished_spans())


def json_spans(path: Path) -> list[dict[str, Any]]:
    """The spans of each line, as written (OTLP/JSON: ids in hex)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        span
        for line in lines
        for resource_spans in json.loads(line)["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]


def requests_of(path: Path) -> list[ExportTraceServiceRequest]:
    """Each line read back into the protobuf message (OTLP/JSON's hex ids made base64, as
    the generic protobuf JSON mapping wants them)."""
    requests = []
    for line in path.read_text(encoding="utf-8").splitlines():
        request = json.loads(line)
        for resource_spans in request["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
        requests.append(ParseDict(request, ExportTraceServiceRequest()))
    return requests


async def test_a_sessions_spans_are_written_as_valid_otlp_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "out" / "agent.jsonl"

    spans = await traced_to_file(path)

    written = json_spans(path)
    assert sorted(s["name"] for s in written) == sorted(s.name for s in spans)
    assert {s["spanId"] for s in written} == {f"{s.context.span_id:016x}" for s in spans}
    assert "agent_session" in {s["name"] for s in written}
    read_back = requests_of(path)
    assert sum(
        len(ss.spans) for r in read_back for rs in r.resource_spans for ss in rs.scope_spans
    ) == len(spans)


async def test_the_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.jsonl"
    monkeypatch.setenv("LIVEKIT_OTEL_FILE", str(path))

    await traced_to_file(None)

    assert requests_of(path)


async def test_view_prints_the_consoles_tree_and_table_from_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.jsonl"
    spans = await traced_to_file(path)

    status = view_main([str(path)])

    printed = capsys.readouterr().out
    assert status == 0
    assert span_tree(spans) in printed  # durations, notes and nesting survive the file
    assert latency_table(spans) in printed


async def test_view_runs_as_a_module(tmp_path: Path) -> None:
    path = tmp_path / "agent.jsonl"
    await traced_to_file(path)

    shown = subprocess.run(
        [sys.executable, "-m", "livekit_otel.view", "--ascii", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )

    assert shown.returncode == 0, shown.stderr
    assert "agent_session" in shown.stdout
    assert "turn   latency" in shown.stdout


def test_view_names_a_line_it_cannot_read_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"resourceSpans": []}\nnot json\n', encoding="utf-8")

    status = view_main([str(path)])

    assert status == 1
    assert f"{path}:2: not an OTLP/JSON line" in capsys.readouterr().err


def test_a_path_that_is_not_a_file_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="path must be a file name"):
        setup_file(42)  # type: ignore[arg-type]


def test_a_folder_is_refused_inside_a_job_with_one_error(
    tmp_path: Path, in_job: FakeJobContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        provider = setup_file(tmp_path)

    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "names a folder" in record.getMessage()
    assert provider.get_tracer("t").start_span("x").is_recording() is False


def test_with_no_path_one_info_line_says_where_spans_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)

    with caplog.at_level(logging.INFO, logger="livekit_otel"):
        setup_file()

    assert str(tmp_path / "livekit-otel-traces.jsonl") in caplog.text
