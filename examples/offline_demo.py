"""A scripted voice call traced end to end, offline: no API key, no server.

A real LiveKit ``AgentSession`` runs with scripted STT, LLM, TTS and VAD: four user
turns, one calling a tool, one interrupted by the user. livekit-otel traces it.

Where the trace goes:
- ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY`` set: to Langfuse (``setup_langfuse``);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` set: to that OTLP backend;
- otherwise (the embedded default): an OTLP JSON file under ``traces/``, and the
  terminal shows the span tree and the per-turn latency table.

Run it with ``make demo`` or ``python examples/offline_demo.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from livekit_otel_dev.console import latency_table, span_tree
from livekit_otel_dev.jsonfile import OtlpJsonFileExporter
from livekit_otel_dev.scripted import (
    ScriptedRun,
    ToolCall,
    UserTurn,
    run_scripted_session,
    scripted_session_options,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from livekit_otel import set_tracer_provider, setup_langfuse, setup_otlp

# the scripted VAD dates the start and end of speech back by these durations, as a real
# VAD does; they are kept shorter than the accelerated call's real pauses
_SPOKEN = {"speech_duration": 0.03, "silence_duration": 0.02}
SCRIPT = [
    UserTurn("Hi, I'd like to plan a day out in Paris.", **_SPOKEN),
    UserTurn(
        "What's the weather like in Paris today?",
        reply=ToolCall("lookup_weather", {"location": "Paris"}),
        **_SPOKEN,
    ),
    UserTurn(
        "Tell me everything about the history of the Louvre.",
        reply="The Louvre began as a fortress built in the late twelfth century. " * 8,
        interrupt_after=0.02,
        **_SPOKEN,
    ),
    UserTurn("Sorry, short version please. Thanks, bye!", **_SPOKEN),
]


class ExportErrors(logging.Handler):
    """Counts the errors exporters log, one per batch they could not deliver."""

    # the OTLP exporters log on loggers under the first, the JSON-file exporter on the second
    LOGGERS = ("opentelemetry.exporter", "livekit_otel_dev.jsonfile")

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if not self.first:
            self.first = record.getMessage()

    def attach(self) -> ExportErrors:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self


def _traces(spans: tuple[ReadableSpan, ...]) -> str:
    count = len({span.context.trace_id for span in spans if span.context is not None})
    return f"{count} trace" if count == 1 else f"{count} traces"


def _configure() -> tuple[TracerProvider, OtlpJsonFileExporter | None, str]:
    if os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"):
        return setup_langfuse(service_name="livekit-otel-demo"), None, "Langfuse"
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return setup_otlp(service_name="livekit-otel-demo"), None, "the OTLP endpoint"
    folder = Path(os.environ.get("LIVEKIT_OTEL_DEMO_DIR", "traces"))
    path = folder / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.otlp.jsonl"
    exporter = OtlpJsonFileExporter(path)
    provider = TracerProvider(resource=Resource.create({"service.name": "livekit-otel-demo"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    set_tracer_provider(provider)
    return provider, exporter, str(path)


async def run_demo_call() -> ScriptedRun:
    """The scripted call itself, traced by whatever provider livekit-otel was given."""
    # a short barge-in is enough to interrupt the agent in this accelerated call
    options = scripted_session_options(min_interruption_duration=0.01)
    return await run_scripted_session(
        SCRIPT, mode="audio", session_options=options, playback_speed=25.0
    )


async def main() -> int:
    """Run the scripted call and show where its trace went; non-zero if an export failed."""
    errors = ExportErrors().attach()
    provider, exporter, destination = _configure()
    collected = InMemorySpanExporter()  # the demo's own copy, for the summary below
    provider.add_span_processor(SimpleSpanProcessor(collected))
    started = time.perf_counter()
    run = await run_demo_call()
    elapsed = time.perf_counter() - started
    provider.force_flush()
    spans = collected.get_finished_spans()
    print(f"Scripted call: {len(SCRIPT)} user turns in {elapsed:.2f} s")
    if exporter is not None:
        print()
        print(span_tree(spans))
        print()
        print(latency_table(spans))
        print()
    provider.shutdown()
    summary = f"{len(spans)} spans in {_traces(spans)}"
    if errors.count:
        print(
            f"{summary}, but exporting to {destination} FAILED: {errors.count} export "
            f"error(s) logged, the first: {errors.first}"
        )
        return 1
    if exporter is None:
        print(f"{summary} exported to {destination}.")
        return 0
    print(f"{summary}, written as OTLP JSON to {destination}")
    print(f"Chat history: {len(run.history)} items; the tool call and the interruption included.")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
