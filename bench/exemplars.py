"""CPU per metric record with the SDK's default exemplar filter and with exemplars off.

The default (trace-based) filter looks at the current span on every record and, when it is
sampled, keeps an exemplar; the meter providers livekit-otel's setup functions build turn
exemplars off. Records a histogram value and a counter add (livekit-otel's attributes
shape) inside a sampled span, as the plugin does at the end of a turn::

    PYTHONPATH=src python bench/exemplars.py [--records 50000]
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel.setup.exporters import meter_provider_without_exemplars

ATTRIBUTES = {"lk.agent.name": "agent", "gen_ai.request.model": "model"}


def microseconds_per_record(provider: ApiMeterProvider, records: int) -> float:
    """Process time per record (histogram record and counter add alternating), in µs."""
    meter = provider.get_meter("bench")
    histogram = meter.create_histogram("bench.latency", unit="s")
    counter = meter.create_counter("bench.turns")
    with TracerProvider().get_tracer("bench").start_as_current_span("turn"):
        started = time.process_time()
        for _ in range(records // 2):
            histogram.record(0.25, ATTRIBUTES)
            counter.add(1, ATTRIBUTES)
        return (time.process_time() - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    records = parser.parse_args().records
    for _ in range(3):
        default = microseconds_per_record(
            MeterProvider(metric_readers=[InMemoryMetricReader()]), records
        )
        off = microseconds_per_record(
            meter_provider_without_exemplars([InMemoryMetricReader()]), records
        )
        print(f"per record: SDK default {default:.2f} µs, exemplars off {off:.2f} µs")


if __name__ == "__main__":
    main()
