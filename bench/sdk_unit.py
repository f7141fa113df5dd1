"""One unit of the OpenTelemetry SDK's own work, repeated: run by ``instructions.py --sdk``.

``python bench/sdk_unit.py UNIT COUNT``: ``span`` starts and ends COUNT spans with no
attribute, ``span32`` with 32 attributes given at the start (a third numbers, the rest
short strings, like livekit-otel's), ``point`` records COUNT histogram data points with
four attributes on a meter provider without exemplars, as setup builds it. Spans go to a
``SimpleSpanProcessor`` with an in-memory exporter, emptied every 100 spans, as in
``make bench``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.types import Attributes

from livekit_otel.setup.exporters import meter_provider_without_exemplars

ATTRIBUTES: Attributes = {
    f"lk.unit.{index}": index * 1.5 if index % 3 == 0 else f"v{index}" for index in range(32)
}
POINT_ATTRIBUTES: Attributes = {
    "lk.agent.name": "agent",
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.provider.name": "openai",
}


def span_unit(attributes: Attributes) -> Callable[[int], None]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def run(count: int) -> None:
        for index in range(count):
            tracer.start_span("unit", attributes=attributes).end()
            if index % 100 == 0:
                exporter.clear()

    return run


def point_unit() -> Callable[[int], None]:
    meter = meter_provider_without_exemplars([InMemoryMetricReader()]).get_meter("bench")
    histogram = meter.create_histogram("lk.unit", unit="s")

    def run(count: int) -> None:
        for _ in range(count):
            histogram.record(0.5, POINT_ATTRIBUTES)

    return run


UNITS: dict[str, Callable[[], Callable[[int], None]]] = {
    "span": lambda: span_unit(None),
    "span32": lambda: span_unit(ATTRIBUTES),
    "point": point_unit,
}


if __name__ == "__main__":
    UNITS[sys.argv[1]]()(int(sys.argv[2]))
