"""The OTLP/HTTP exporters the setup functions build, and the providers around them.

Each exporter sends exactly the headers it was given (never a neighbour backend's key from
``OTEL_EXPORTER_OTLP_*HEADERS``), logs a failed export as one line instead of raising,
and compresses with gzip.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import unquote

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from livekit_otel.setup.endpoints import (
    OTLP_HEADERS,
    OTLP_METRICS_HEADERS,
    OTLP_TRACES_HEADERS,
    ExportTarget,
    redact_url,
)


def build_provider(
    target: ExportTarget, resource: Resource, timeout: float | None
) -> TracerProvider:
    """A provider with a batch processor around a gzip OTLP/HTTP exporter for ``target``."""
    with _quiet_env_header_warnings():
        exporter = _SpanExporter(
            endpoint=target.url,
            headers=dict(target.headers),
            timeout=timeout,
            compression=Compression.Gzip,
        )
    _drop_env_headers(exporter, target.headers)
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class _SpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP span exporter, whose failed exports are logged and never raise.

    Older exporter releases (1.39, which livekit-agents 1.3.6 to 1.6.7 pin) let a refused
    connection or a timed-out request escape ``export()``. The batch processor then logs it
    through a logger that drops a repeat of the same message for 20 seconds, across every
    provider of the process, so a failing backend could go unreported. Newer releases (1.44
    on) catch and log such failures themselves, on the exporter's logger; this does the same.
    """

    def __init__(self, *, endpoint: str, **kwargs: Any) -> None:
        super().__init__(endpoint=endpoint, **kwargs)
        self._livekit_otel_target = redact_url(endpoint)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return super().export(spans)
        except Exception as error:
            _exporter_logger.error(
                "Failed to export span batch to %s: %s: %s",
                self._livekit_otel_target,
                type(error).__name__,
                error,
            )
            return SpanExportResult.FAILURE


_exporter_logger = logging.getLogger(OTLPSpanExporter.__module__)


def build_meter_provider(
    target: ExportTarget, resource: Resource, timeout: float | None
) -> MeterProvider:
    """A meter provider whose periodic reader posts to ``target`` with gzip.

    The interval and the export timeout follow ``OTEL_METRIC_EXPORT_INTERVAL`` /
    ``OTEL_METRIC_EXPORT_TIMEOUT``; temporality follows
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` (cumulative by default).
    """
    with _quiet_env_header_warnings():
        exporter = _MetricExporter(
            endpoint=target.url,
            headers=dict(target.headers),
            timeout=timeout,
            compression=Compression.Gzip,
        )
    _drop_env_headers(exporter, target.headers, (OTLP_METRICS_HEADERS, OTLP_HEADERS))
    return meter_provider_without_exemplars([PeriodicExportingMetricReader(exporter)], resource)


def meter_provider_without_exemplars(
    readers: Sequence[MetricReader], resource: Resource | None = None, **options: Any
) -> MeterProvider:
    """A meter provider over ``readers`` that samples no exemplars.

    livekit-otel's metrics carry no exemplars a backend would use, and the SDK's default
    filter (trace-based) costs a look at the current span on every record. SDK releases
    without exemplar support (no ``exemplar_filter`` parameter) get a plain provider. A
    meter provider the user builds keeps its own settings: only setup builds through here.
    """
    exemplars_off = _always_off_exemplar_filter()
    if exemplars_off is not None:
        options["exemplar_filter"] = exemplars_off
    return MeterProvider(metric_readers=readers, resource=resource, **options)


def _always_off_exemplar_filter() -> Any | None:
    """The SDK's ``AlwaysOffExemplarFilter()``, or ``None`` where the release has none."""
    if "exemplar_filter" not in inspect.signature(MeterProvider).parameters:
        return None
    import opentelemetry.sdk.metrics as sdk_metrics

    filter_class = getattr(sdk_metrics, "AlwaysOffExemplarFilter", None)
    return filter_class() if filter_class is not None else None


class _MetricExporter(OTLPMetricExporter):
    """The OTLP/HTTP metric exporter, whose failed exports are one log line, never raised.

    Older releases (1.39) let a refused connection escape ``export()``; the periodic reader
    then logs it with a traceback at every interval. This logs one line on the exporter's
    logger instead, as newer releases do.
    """

    def __init__(self, *, endpoint: str, **kwargs: Any) -> None:
        super().__init__(endpoint=endpoint, **kwargs)
        self._livekit_otel_target = redact_url(endpoint)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            return super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as error:
            _metric_exporter_logger.error(
                "Failed to export metrics to %s: %s: %s",
                self._livekit_otel_target,
                type(error).__name__,
                error,
            )
            return MetricExportResult.FAILURE


_metric_exporter_logger = logging.getLogger(OTLPMetricExporter.__module__)


def _drop_env_headers(
    exporter: Any,
    wanted: Mapping[str, str],
    variables: Sequence[str] = (OTLP_TRACES_HEADERS, OTLP_HEADERS),
) -> None:
    """Remove headers the exporter picked up from ``OTEL_EXPORTER_OTLP_*HEADERS``.

    Some SDK releases merge those variables into explicit headers (1.45), or use them when
    the explicit headers are empty (1.39), which would send, say, a Honeycomb key to
    Langfuse. Only names that come from the first of ``variables`` that is set and are
    not in ``wanted`` are removed, so the SDK's own headers (content type, user agent)
    stay.
    """
    text = next((os.environ[name] for name in variables if os.environ.get(name)), "")
    from_env = {unquote(entry.partition("=")[0]).strip().lower() for entry in text.split(",")}
    foreign = from_env - {name.lower() for name in wanted} - {""}
    if not foreign:
        return
    client = getattr(exporter, "_client", None)
    session = getattr(exporter, "_session", None)
    for mapping in (
        getattr(client, "_headers", None),
        getattr(exporter, "_headers", None),
        getattr(session, "headers", None),
    ):
        if isinstance(mapping, MutableMapping):
            for name in [name for name in mapping if str(name).lower() in foreign]:
                del mapping[name]


class _EnvHeaderWarningFilter(logging.Filter):
    """Drops the SDK's warning about a malformed header variable: it quotes the value."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Header format invalid")


@contextlib.contextmanager
def _quiet_env_header_warnings() -> Iterator[None]:
    """While the exporter is built, silence the SDK warning that would echo a secret.

    The exporter parses ``OTEL_EXPORTER_OTLP_HEADERS`` even when explicit headers are
    given; ``setup_otlp`` has already validated the variable when it uses it, and
    ``setup_langfuse`` ignores it.
    """
    sdk_logger = logging.getLogger("opentelemetry.util.re")
    quiet = _EnvHeaderWarningFilter()
    sdk_logger.addFilter(quiet)
    try:
        yield
    finally:
        sdk_logger.removeFilter(quiet)
