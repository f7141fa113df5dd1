"""The Prometheus test harness itself, with real components and no LiveKit session.

An OpenTelemetry `MeterProvider` with the Prometheus exporter's `PrometheusMetricReader`
serves its metrics over HTTP on a free loopback port (`prometheus_client.start_http_server`);
a real `prometheus` server (tests/support/prometheus.py) scrapes it every second; the tests
ask Prometheus, in PromQL, for the values they recorded. This proves the chain that the
session metrics tests stand on: instrument names and units as Prometheus spells them, the
histogram's advisory bucket boundaries, counters with attributes, and what `rate()` sees.

The exporter package (`opentelemetry-exporter-prometheus`) is skipped-if-missing here, since
it is not yet in the project's dependencies; the Prometheus binary follows the support
module's rule (skip locally, fail in CI when missing).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip(
    "opentelemetry.exporter.prometheus",
    reason="opentelemetry-exporter-prometheus is not installed (livekit-otel[prometheus])",
)

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from support import prometheus as prometheus_support
from support.prometheus import (
    PrometheusError,
    PrometheusServer,
    prometheus_fixture,
)

prometheus = prometheus_fixture()

SERVICE_NAME = "livekit-otel-harness"
AGENT = {"lk.agent.name": "harness"}
LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
"""Advisory boundaries: none of them is an SDK default (0, 5, 10, 25, ... 10000), so the
bucket labels Prometheus stores show the advisory was honoured."""


@dataclass
class ServedMeter:
    """A meter whose provider is scraped over HTTP at `target` (host:port)."""

    meter: Meter
    provider: MeterProvider
    target: str


def _reader() -> tuple[PrometheusMetricReader, Any]:
    """A reader on its own `CollectorRegistry` when the exporter allows one (0.63b1 and
    later); older releases (0.60b1, for SDK 1.39) always register in the global REGISTRY,
    from which `MeterProvider.shutdown()` unregisters them again."""
    if "registry" in inspect.signature(PrometheusMetricReader).parameters:
        registry = CollectorRegistry()
        return PrometheusMetricReader(registry=registry), registry
    return PrometheusMetricReader(), REGISTRY


@pytest.fixture
def served_meter() -> Iterator[ServedMeter]:
    """A MeterProvider (never the global one) exposed on a free loopback port."""
    reader, registry = _reader()
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"service.name": SERVICE_NAME})
    )
    # Port 0: the OS picks a free port, read back from the server (no race with other tests).
    server, thread = start_http_server(port=0, addr="127.0.0.1", registry=registry)
    try:
        yield ServedMeter(
            meter=provider.get_meter("livekit-otel-test", "0.0.1"),
            provider=provider,
            target=f"127.0.0.1:{server.server_port}",
        )
    finally:
        # shutdown() stops serve_forever; server_close() releases the port.
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        provider.shutdown()


def _latency_histogram(meter: Meter) -> Any:
    return meter.create_histogram(
        "lk.turn.perceived_latency",
        unit="s",
        description="Time from the end of the user's speech to the agent's first audio",
        explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
    )


def _turn_counter(meter: Meter) -> Any:
    return meter.create_counter("lk.turns", unit="{turn}", description="Agent turns")


@pytest.mark.e2e
def test_recorded_histogram_and_counter_reach_prometheus(
    served_meter: ServedMeter, prometheus: Any
) -> None:
    latency = _latency_histogram(served_meter.meter)
    turns = _turn_counter(served_meter.meter)
    recorded = [0.3, 0.6, 0.7, 1.5]
    for value in recorded:
        latency.record(value, AGENT)
    turns.add(3, {**AGENT, "lk.turn.interrupted": False})
    turns.add(1, {**AGENT, "lk.turn.interrupted": True})

    server: PrometheusServer = prometheus(served_meter.target)
    server.wait_until_scraped()

    # Names: dots become underscores, unit "s" adds _seconds, a counter gets _total, and
    # the annotation unit "{turn}" adds nothing.
    assert server.value("sum(lk_turn_perceived_latency_seconds_count)") == len(recorded)
    assert server.value("sum(lk_turn_perceived_latency_seconds_sum)") == pytest.approx(
        sum(recorded)
    )
    buckets = dict(
        (labels["le"], value)
        for labels, value in server.query("sum by (le) (lk_turn_perceived_latency_seconds_bucket)")
    )
    assert buckets == {
        "0.1": 0,
        "0.25": 0,
        "0.5": 1,
        "1.0": 3,
        "2.0": 4,
        "5.0": 4,
        "10.0": 4,
        "+Inf": 4,
    }
    # The median of the cumulative buckets: rank 2 of 4 falls in (0.5, 1], interpolated
    # linearly between its bounds (1 observation below it, 3 at its top): 0.75.
    median = server.value(
        "histogram_quantile(0.5, sum by (le) (lk_turn_perceived_latency_seconds_bucket))"
    )
    assert median == pytest.approx(0.75)

    by_interruption = {
        labels["lk_turn_interrupted"]: value
        for labels, value in server.query("sum by (lk_turn_interrupted) (lk_turns_total)")
    }
    assert by_interruption == {"false": 3, "true": 1}
    series = server.query("lk_turns_total")
    assert {labels["lk_agent_name"] for labels, _ in series} == {"harness"}
    assert {labels["job"] for labels, _ in series} == {prometheus_support.JOB_NAME}

    info = server.query("target_info")
    assert [labels["service_name"] for labels, _ in info] == [SERVICE_NAME]

    with pytest.raises(PrometheusError, match="parse error"):
        server.query("sum(")


@pytest.mark.e2e
def test_rate_sees_only_what_was_recorded_after_the_first_scrape(
    served_meter: ServedMeter, prometheus: Any
) -> None:
    """A counter's first scraped value is a baseline: rate() and increase() start from it.

    Values recorded before Prometheus first scraped the endpoint count in the cumulative
    series but never in a rate. Session tests that ask for rates must let one scrape happen
    before the session, or query the cumulative series.
    """
    latency = _latency_histogram(served_meter.meter)
    turns = _turn_counter(served_meter.meter)
    for _ in range(3):
        latency.record(0.05, AGENT)
    turns.add(3, AGENT)

    server: PrometheusServer = prometheus(served_meter.target)
    server.wait_until_scraped()
    for _ in range(3):
        latency.record(3.0, AGENT)
    turns.add(2, AGENT)
    server.wait_until_scraped()

    cumulative = server.value(
        "histogram_quantile(0.5, sum by (le) (lk_turn_perceived_latency_seconds_bucket))"
    )
    assert cumulative == pytest.approx(0.1)  # rank 3 of 6 is the top of the first bucket
    windowed = server.value(
        "histogram_quantile(0.5, sum by (le) (rate(lk_turn_perceived_latency_seconds_bucket[1m])))"
    )
    assert 2.0 < windowed <= 5.0  # only the three 3.0 s turns, in bucket (2, 5]
    assert server.value("sum(lk_turns_total)") == 5
    # increase() extrapolates to the window's edges, so it is only close to 2, never 5.
    increase = server.value("sum(increase(lk_turns_total[1m]))")
    assert 2 <= increase < 5


def test_server_refuses_url_targets() -> None:
    with pytest.raises(ValueError, match="host:port"):
        PrometheusServer(["http://127.0.0.1:9464/metrics"])
    with pytest.raises(ValueError, match="at least one"):
        PrometheusServer([])


def test_missing_binary_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prometheus_support.BINARY_ENV, "/nonexistent/prometheus")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        prometheus_support.require_prometheus()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        prometheus_support.require_prometheus()


@pytest.mark.e2e
def test_server_stops_and_cleans_up() -> None:
    prometheus_support.require_prometheus()
    server = PrometheusServer(["127.0.0.1:9"]).start()
    root_dir, process = server.root_dir, server.process
    assert root_dir is not None and root_dir.is_dir()
    assert process is not None
    assert server.value("vector(1)") == 1
    assert math.isnan(server.value("scalar(vector(1) / 0 * 0)"))
    server.stop()
    assert process.returncode is not None
    assert not root_dir.exists()
    server.stop()  # idempotent
