"""``setup_otlp``: livekit-otel's spans and metrics to any OTLP/HTTP backend."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from livekit_otel.recording.registry import DEFAULT_SHUTDOWN_TIMEOUT
from livekit_otel.setup.endpoints import (
    otlp_conventions,
    otlp_metrics_enabled,
    resolve_otlp_metrics_target,
    resolve_otlp_target,
)
from livekit_otel.setup.installed import install, never_failing_a_job
from livekit_otel.setup.settings import setup_options


def setup_otlp(
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    set_global: bool = False,
    timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    instrument_options: Mapping[str, Any] | None = None,
    metrics: bool | None = None,
) -> TracerProvider:
    """Send livekit-otel's spans and metrics to an OTLP/HTTP endpoint; return the provider.

    ``endpoint`` is a base URL (``http://localhost:4318``; ``/v1/traces`` is appended) or
    a full traces URL ending in ``/v1/traces`` (used as given). Without it the standard
    variables apply: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (full URL), else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (base URL), else ``http://localhost:4318``.
    ``headers`` defaults to ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` /
    ``OTEL_EXPORTER_OTLP_HEADERS``; pass ``{}`` to send none.

    Metrics go to ``/v1/metrics`` of the same backend with the same headers, or where
    ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` say
    (see ``livekit_otel.setup.endpoints``), every ``OTEL_METRIC_EXPORT_INTERVAL`` ms (60 s by
    default) and at LiveKit job shutdown. ``metrics`` turns them on or off; by default
    they are on unless ``OTEL_METRICS_EXPORTER`` is ``none`` (or names other exporters
    only). Backends that take no metrics (Arize Phoenix, Jaeger) want ``metrics=False``.
    ``installed_meter_provider()`` returns the meter provider. While ``setup_prometheus``
    serves, the metrics go to Prometheus and this builds no metric exporter.

    Options: ``service_name`` (wins over ``OTEL_SERVICE_NAME``; default
    ``"livekit-agent"`` when nothing names the service), ``resource_attributes`` (merged
    over ``OTEL_RESOURCE_ATTRIBUTES``), ``set_global`` (also make the providers the
    process-global ones), ``timeout`` (seconds per export request; default
    ``OTEL_EXPORTER_OTLP_TIMEOUT`` or 10), ``shutdown_timeout`` (bound of the flush at
    LiveKit job shutdown), ``instrument_options`` (keyword arguments for
    ``set_tracer_provider``).

    ``headers`` may also be given as a string in the variable's format
    (``"x-api-key=KEY,x-team=NAME"``).

    Raises ``ValueError`` for a URL without ``http://``/``https://`` (the metrics URL
    included) or with a path no receiver serves (``/v1/trace``, ``/v1/spans``), an argument
    of the wrong type, malformed headers, a timeout that is not a positive number of
    seconds, or ``instrument_options`` that ``instrument()`` would refuse. With no endpoint
    given anywhere, one INFO line says spans go to ``http://localhost:4318``.
    Inside a running LiveKit job it raises nothing: it logs one ERROR that says what to
    fix and returns a provider that records and exports nothing (``disabled_provider``),
    and the job runs untraced.
    """

    def build() -> TracerProvider:
        options = setup_options(
            service_name,
            resource_attributes,
            set_global,
            timeout,
            shutdown_timeout,
            instrument_options,
        )
        target = resolve_otlp_target(endpoint, headers, os.environ)
        metrics_target = None
        if _metrics_wanted(metrics):
            metrics_target = resolve_otlp_metrics_target(endpoint, headers, os.environ)
        conventions = otlp_conventions(target, resource_attributes, os.environ)
        return install(target, options, metrics_target, conventions=conventions)

    return never_failing_a_job("setup_otlp", build)


def _metrics_wanted(metrics: bool | None) -> bool:
    """``setup_otlp``'s ``metrics`` option, else what ``OTEL_METRICS_EXPORTER`` says."""
    if metrics is None:
        return otlp_metrics_enabled(os.environ)
    if not isinstance(metrics, bool):
        raise ValueError(f"metrics must be True, False or None, not {metrics!r}")
    return metrics
