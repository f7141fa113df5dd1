"""setup_otlp's metrics against a real OTLP/HTTP receiver: URL and headers,
OTEL_METRICS_EXPORTER, flush bounds, export failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import opentelemetry.sdk.metrics as sdk_metrics
import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel.recording.registry import flush_on_shutdown
from livekit_otel.setup import installed as setup_state
from livekit_otel.setup.endpoints import (
    resolve_otlp_metrics_target,
)
from livekit_otel.setup.exporters import meter_provider_without_exemplars
from livekit_otel.setup.otlp import setup_otlp
from support.setup_fixtures import (
    HEADER_SECRET,
    PluginStub,
    clean_setup,
    count_one,
    emit_span,
    wait_until,
)


@pytest.fixture(autouse=True)
def plugin(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> Iterator[PluginStub]:
    """A clean setup state and a stub instrumentor for every test."""
    yield from clean_setup(monkeypatch, otlp_receiver)


def test_otlp_metrics_reach_v1_metrics_of_the_same_backend_with_the_same_headers(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    provider = setup_otlp(otlp_receiver.url, {"x-api-key": "k1"}, service_name="agent-x")
    meter_provider = setup_state.installed_meter_provider()

    count_one(meter_provider)

    (metric,) = otlp_receiver.wait_for_metrics("unit.calls")
    assert metric.path == "/v1/metrics"
    assert metric.headers["x-api-key"] == "k1"
    assert metric.headers["content-encoding"] == "gzip"
    assert metric.resource["service.name"] == "agent-x"
    assert (metric.kind, metric.temporality, metric.monotonic) == ("sum", "CUMULATIVE", True)
    assert [point.value for point in metric.points] == [1]
    assert plugin.meters == [meter_provider]
    assert [handed for handed, _ in plugin.calls] == [provider]


@pytest.mark.parametrize("path", ["", "/", "/v1/traces", "/v1/traces/"])
def test_metrics_url_is_built_from_the_endpoint_argument(
    otlp_receiver: OtlpReceiver, path: str
) -> None:
    setup_otlp(otlp_receiver.url + path)

    count_one(setup_state.installed_meter_provider())

    assert otlp_receiver.wait_for_metrics("unit.calls")[0].path == "/v1/metrics"


def test_metrics_endpoint_and_headers_variables_apply_to_metrics_only(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics_backend = OtlpReceiver().start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-generic=g")
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", metrics_backend.url + "/v1/metrics"
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-metrics=m")

        emit_span(setup_otlp())
        count_one(setup_state.installed_meter_provider())

        (span,) = otlp_receiver.wait_for_spans(1)
        (metric,) = metrics_backend.wait_for_metrics("unit.calls")
        assert otlp_receiver.metrics == []
        assert span.headers["x-generic"] == "g" and "x-metrics" not in span.headers
        assert metric.headers["x-metrics"] == "m" and "x-generic" not in metric.headers
    finally:
        metrics_backend.stop()


def test_explicit_headers_replace_env_headers_for_metrics_too(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SDK 1.45 merges these variables into explicit headers, 1.39 replaces them: neither here
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-env-only={HEADER_SECRET}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", f"x-env-metrics={HEADER_SECRET}")

    setup_otlp(otlp_receiver.url, {"X-Honeycomb-Team": "key"})
    count_one(setup_state.installed_meter_provider())

    headers = otlp_receiver.wait_for_metrics("unit.calls")[0].headers
    assert headers["x-honeycomb-team"] == "key"
    assert HEADER_SECRET not in repr(headers)


def test_empty_headers_send_no_env_headers_with_metrics(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", f"x-env-metrics={HEADER_SECRET}")

    setup_otlp(otlp_receiver.url, {})
    count_one(setup_state.installed_meter_provider())

    assert HEADER_SECRET not in repr(otlp_receiver.wait_for_metrics("unit.calls")[0].headers)


@pytest.mark.parametrize(
    ("environ", "url", "headers"),
    [
        ({}, "http://localhost:4318/v1/metrics", {}),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/metrics", {}),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/otlp/v1/traces"},
            "http://c:4318/otlp/v1/metrics",
            {},
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t.example/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-t=1",
            },
            "https://t.example/v1/metrics",
            {"x-t": "1"},
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t.example/spans"},
            "http://localhost:4318/v1/metrics",
            {},
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo.example/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-t=1",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-c=2",
            },
            "http://collector:4318/v1/metrics",
            {"x-c": "2"},
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://m.example/custom",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-c=2",
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-m=3",
            },
            "https://m.example/custom",
            {"x-m": "3"},
        ),
    ],
)
def test_metrics_target_follows_metrics_variables_else_the_traces_backend(
    environ: dict[str, str], url: str, headers: dict[str, str]
) -> None:
    target = resolve_otlp_metrics_target(None, None, environ)

    assert (target.url, dict(target.headers)) == (url, headers)


def test_metrics_target_takes_the_arguments_over_every_variable() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://m.example/v1/metrics",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-m=3",
    }

    target = resolve_otlp_metrics_target("http://x:4318/prefix", {"X-A": "1"}, environ)

    assert (target.url, dict(target.headers)) == ("http://x:4318/prefix/v1/metrics", {"x-a": "1"})


@pytest.mark.parametrize(
    ("exporters", "enabled"),
    [("", True), ("otlp", True), ("console, OTLP", True), ("none", False), ("prometheus", False)],
)
def test_otel_metrics_exporter_turns_otlp_metrics_on_or_off(
    otlp_receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    plugin: PluginStub,
    exporters: str,
    enabled: bool,
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", exporters)

    setup_otlp(otlp_receiver.url)

    assert (setup_state.installed_meter_provider() is not None) is enabled
    assert len(plugin.meters) == int(enabled)


@pytest.mark.parametrize(("exporters", "option"), [("otlp", False), ("none", True)])
def test_metrics_option_wins_over_otel_metrics_exporter(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, exporters: str, option: bool
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", exporters)

    setup_otlp(otlp_receiver.url, metrics=option)

    assert (setup_state.installed_meter_provider() is not None) is option


def test_metrics_off_leaves_a_bad_metrics_variable_unread(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")

    emit_span(setup_otlp(otlp_receiver.url))

    assert otlp_receiver.wait_for_spans(1)


def test_otlp_metrics_endpoint_without_scheme_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318/v1/metrics")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_METRICS_ENDPOINT must be a URL"):
        setup_otlp()


def test_malformed_metrics_headers_env_is_rejected_without_echoing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", f"Authorization Basic {HEADER_SECRET}")

    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_METRICS_HEADERS") as error:
        setup_otlp("http://localhost:4318")

    assert HEADER_SECRET not in str(error.value)


def test_metrics_endpoint_ending_in_v1_traces_gets_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/traces"}

    with caplog.at_level(logging.WARNING):
        resolve_otlp_metrics_target(None, None, environ)

    assert "should end with /v1/metrics" in caplog.text


def test_same_settings_keep_the_meter_provider_and_other_settings_retire_it(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    setup_otlp(otlp_receiver.url)
    first = setup_state.installed_meter_provider()
    setup_otlp(otlp_receiver.url)
    assert setup_state.installed_meter_provider() is first

    setup_otlp(otlp_receiver.url, service_name="other")
    second = setup_state.installed_meter_provider()

    assert first is not None and second is not None and second is not first
    assert plugin.meters == [first, second]
    wait_until(lambda: first._shutdown)  # retired in the background


async def test_metrics_flush_returns_within_its_bound_when_the_receiver_hangs(
    otlp_receiver: OtlpReceiver,
) -> None:
    otlp_receiver.respond(delay=30.0)
    setup_otlp(otlp_receiver.url, timeout=20.0)
    meter = setup_state.installed_meter_provider()
    assert meter is not None
    meter.get_meter("t").create_counter("unit.calls").add(1)

    started = time.monotonic()
    await flush_on_shutdown(meter, timeout=0.3)("job_shutdown")

    assert 0.3 <= time.monotonic() - started < 0.8
    assert otlp_receiver.wait_for_requests(1)[0].path == "/v1/metrics"


async def test_a_meter_provider_whose_flush_raises_is_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(MeterProvider):
        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            raise Exception("MeterProvider.force_flush failed because ...")  # as the SDK does

    with caplog.at_level(logging.DEBUG):
        await flush_on_shutdown(Failing(shutdown_on_exit=False), timeout=0.5)("job_shutdown")

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage() == "livekit-otel: flushing metrics failed (Exception)"


def test_a_metrics_export_that_raises_is_one_exporter_error_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # older exporter releases let a refused connection escape export()
    def refused(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(OTLPMetricExporter, "export", refused)
    setup_otlp(refused_url(), headers={})
    with caplog.at_level(logging.DEBUG):
        count_one(setup_state.installed_meter_provider())

    failures = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in failures] == [OTLPMetricExporter.__module__]
    assert "ConnectionError: connection refused" in failures[0].getMessage()
    assert failures[0].exc_info is None


# --- exemplars --------------------------------------------------------------------------


def exemplars_recorded(meter_provider: MeterProvider, reader: InMemoryMetricReader) -> int:
    """Record one histogram value inside a sampled span; count the exemplars collected."""
    tracer = TracerProvider().get_tracer("livekit-otel-test")
    histogram = meter_provider.get_meter("livekit-otel-test").create_histogram("unit.latency")
    with tracer.start_as_current_span("turn"):
        histogram.record(0.25)
    data = reader.get_metrics_data()
    assert data is not None
    return sum(
        len(point.exemplars)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        for point in metric.data.data_points
    )


@pytest.mark.skipif(
    not hasattr(sdk_metrics, "AlwaysOffExemplarFilter"), reason="SDK without exemplars"
)
def test_meter_providers_setup_builds_sample_no_exemplars() -> None:
    own_reader, setup_reader = InMemoryMetricReader(), InMemoryMetricReader()
    own = MeterProvider(metric_readers=[own_reader])  # the SDK's default: trace-based
    built = meter_provider_without_exemplars([setup_reader])

    assert exemplars_recorded(own, own_reader) == 1
    assert exemplars_recorded(built, setup_reader) == 0


@pytest.mark.skipif(
    not hasattr(sdk_metrics, "AlwaysOffExemplarFilter"), reason="SDK without exemplars"
)
def test_setup_otlp_builds_its_meter_provider_without_exemplars(
    otlp_receiver: OtlpReceiver,
) -> None:
    setup_otlp(otlp_receiver.url)

    meter_provider = setup_state.installed_meter_provider()
    assert meter_provider is not None
    exemplar_filter = meter_provider._sdk_config.exemplar_filter
    assert isinstance(exemplar_filter, sdk_metrics.AlwaysOffExemplarFilter)
