"""What the setup functions installed, and the rules every installation follows.

Holds the providers ``setup_otlp`` / ``setup_langfuse`` built and the Prometheus endpoint
``setup_prometheus`` serves; hands them to the instrumentor; replaces them when a setup
function is called again with other settings (the new ones are installed first, the old
ones flushed and shut down in a background thread, with a warning); and keeps the rule
that setup never fails a running LiveKit job (``never_failing_a_job``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from livekit_otel import instrumentor
from livekit_otel.config import backend_conventions
from livekit_otel.recording.registry import (
    _current_job_context,
    flush_at_every_job_end,
    register_flush_on_shutdown,
    stop_flushing,
)
from livekit_otel.setup.endpoints import ExportTarget, redact_url
from livekit_otel.setup.exporters import build_meter_provider, build_provider
from livekit_otel.setup.settings import SetupOptions, build_resource, fingerprint

logger = logging.getLogger(__name__)

_SERVER_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Installed:
    """What ``setup_otlp`` / ``setup_langfuse`` built, and a digest of its settings.

    ``meter_provider`` is ``setup_otlp``'s OTLP metrics; ``None`` for Langfuse, with
    metrics off, or while a Prometheus endpoint takes the metrics.
    """

    fingerprint: str
    provider: TracerProvider
    meter_provider: MeterProvider | None = None


@dataclass(frozen=True)
class Served:
    """The Prometheus endpoint ``setup_prometheus`` serves, and a digest of its settings."""

    fingerprint: str
    provider: MeterProvider
    host: str
    port: int
    server: Any
    thread: threading.Thread

    def close(self) -> None:
        """Stop serving (the port is free again) and shut the meter provider down."""
        try:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(_SERVER_STOP_TIMEOUT_S)
        finally:
            self.provider.shutdown()


lock = threading.RLock()
_installed: Installed | None = None
_served: Served | None = None
# the meter provider the setup functions last handed to the plugin (None: none, or taken back)
_handed_meter: MeterProvider | None = None


def installed_meter_provider() -> MeterProvider | None:
    """The meter provider the setup functions built and livekit-otel records to.

    ``setup_prometheus``'s while it serves, else ``setup_otlp``'s OTLP one; ``None`` when
    neither built one (``setup_langfuse``, metrics turned off, nothing set up).
    """
    with lock:
        return _meter_for_plugin()


def disabled_provider() -> TracerProvider:
    """A provider that records and exports nothing: what setup returns when it failed in a job.

    Its sampler drops every span, it has no span processor and registers no ``atexit``
    hook, so using it (``get_tracer``, ``force_flush``, ``shutdown``, even
    ``add_span_processor``) works and costs next to nothing. livekit-otel is not handed
    this provider: sessions stay untraced unless another provider was set up before.
    """
    return TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)


def never_failing_a_job(function: str, build: Callable[[], TracerProvider]) -> TracerProvider:
    """``build()``; a failure raises outside a job, and inside one leaves the call untraced."""
    try:
        return build()
    except Exception as error:
        if _current_job_context() is None:
            raise
        return _untraced_job(function, error)


def _untraced_job(function: str, error: Exception) -> TracerProvider:
    """Log why setup failed inside a LiveKit job, once, and return a disabled provider.

    Only ``ValueError`` messages are quoted: setup writes them to name the setting to fix
    and never puts a key or header value in them. Anything else is unexpected, so only its
    type is logged, in case its message carries a setting's value.
    """
    if isinstance(error, ValueError):
        problem = str(error)
    else:
        problem = f"unexpected {type(error).__name__} while building the exporter"
    logger.error(
        "livekit-otel: %s failed inside a LiveKit job, so this call runs without tracing: "
        "%s. Fix the setting; called at module level (import or worker start) setup raises "
        "this as ValueError, so a bad setting stops the deploy instead of each call.",
        function,
        problem,
    )
    return disabled_provider()


TracerFactory = Callable[[ExportTarget, Resource, "float | None"], TracerProvider]


def install(
    target: ExportTarget,
    options: SetupOptions,
    metrics_target: ExportTarget | None,
    build_tracer: TracerFactory | None = None,
    conventions: str | None = None,
) -> TracerProvider:
    """Install providers for ``target``, or keep those already built for the same settings.

    ``build_tracer(target, resource, timeout)`` builds the tracer provider (by default an
    OTLP/HTTP one; ``setup_file`` passes its file provider). ``conventions``: the
    backend's, the default when livekit-otel is instrumented here.
    """
    global _installed
    resource = build_resource(options.service_name, options.resource_attributes)
    digest = fingerprint(target, resource, options, metrics_target)
    with lock:
        previous = _installed
        if previous is not None and previous.fingerprint == digest:
            installed = previous
        else:
            build = build_tracer if build_tracer is not None else build_provider
            provider = build(target, resource, options.timeout)
            meter_provider = None
            if metrics_target is not None and _served is None:
                meter_provider = build_meter_provider(metrics_target, resource, options.timeout)
            elif metrics_target is not None:
                logger.info(
                    "livekit-otel: metrics go to the Prometheus endpoint setup_prometheus "
                    "serves; setup_otlp sends traces only"
                )
            try:
                _hand_to_plugin(provider, meter_provider, options.instrument_options, conventions)
            except BaseException:
                provider.shutdown()
                if meter_provider is not None:
                    meter_provider.shutdown()
                raise
            if options.set_global:
                set_global(provider)
                if meter_provider is not None:
                    set_global_meter(meter_provider)
            installed = _installed = Installed(digest, provider, meter_provider)
            if previous is not None:
                _retire(previous, target)
        for built in (installed.provider, installed.meter_provider):
            if built is not None:
                flush_at_every_job_end(built, options.shutdown_timeout)
    register_flush_on_shutdown(installed.provider, options.shutdown_timeout)
    return installed.provider


def serve(served: Served, instrument_options: Mapping[str, Any] | None) -> None:
    """Make ``served`` the Prometheus endpoint the plugin's metrics go to.

    ``setup_otlp``'s OTLP metrics, if any, stop: Prometheus takes the metrics. On failure
    the endpoint served before stays.
    """
    global _served, _installed
    with lock:
        previous = _served
        try:
            _served = served
            hand_meter_to_plugin(served.provider, instrument_options)
        except BaseException:
            _served = previous
            raise
        if _installed is not None and _installed.meter_provider is not None:
            otlp_metrics = _installed.meter_provider
            _installed = Installed(_installed.fingerprint, _installed.provider, None)
            stop_flushing(otlp_metrics)
            logger.info(
                "livekit-otel: metrics now go to the Prometheus endpoint; setup_otlp's OTLP "
                "metric exporter is shut down"
            )
            in_background(otlp_metrics.shutdown)


def served() -> Served | None:
    """The Prometheus endpoint being served, if any."""
    return _served


def forget_served() -> None:
    """No endpoint is served any more (its port is about to be freed)."""
    global _served
    _served = None


def _hand_to_plugin(
    provider: TracerProvider,
    meter_provider: MeterProvider | None,
    instrument_options: Mapping[str, Any] | None,
    conventions: str | None = None,
) -> None:
    """Make ``provider`` the one livekit-otel's spans go to, and hand over the metrics.

    When this instruments livekit-agents (first time, or options given), ``conventions``
    are the default; an instrumentation already running keeps its options.

    The metrics go to Prometheus while ``setup_prometheus`` serves, else to
    ``meter_provider``; a meter provider handed over before and now replaced is taken back
    (the plugin then records to the global one). A meter provider the user gave
    ``instrument()`` is left alone when the setup brings none.
    """
    global _handed_meter
    wanted = _served.provider if _served is not None else meter_provider
    options = dict(instrument_options or {})
    if not _plugin_instrumented() or options:
        if conventions is not None:
            options = backend_conventions(options, conventions)
        if wanted is not None:
            options["meter_provider"] = wanted
        instrumentor.set_tracer_provider(provider, **options)
    else:
        instrumentor.set_tracer_provider(provider)
        if wanted is not None or _handed_meter is not None:
            instrumentor.set_meter_provider(wanted)
    _handed_meter = wanted


def hand_meter_to_plugin(
    meter_provider: MeterProvider, instrument_options: Mapping[str, Any] | None
) -> None:
    """Make ``meter_provider`` the one livekit-otel's metrics go to."""
    global _handed_meter
    instrumentor.set_meter_provider(meter_provider, **dict(instrument_options or {}))
    _handed_meter = meter_provider


def _plugin_instrumented() -> bool:
    return bool(instrumentor.LiveKitAgentsInstrumentor().is_instrumented_by_opentelemetry)


def _meter_for_plugin() -> MeterProvider | None:
    if _served is not None:
        return _served.provider
    return _installed.meter_provider if _installed is not None else None


def set_global(provider: TracerProvider) -> None:
    """Make ``provider`` the process-global OpenTelemetry provider, or warn why not."""
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        logger.warning(
            "livekit-otel: set_global=True, but a global tracer provider was already set "
            "and OpenTelemetry allows setting it once per process; other instrumentations "
            "keep using the earlier one"
        )


def set_global_meter(provider: MeterProvider) -> None:
    """Make ``provider`` the process-global meter provider, or warn why not."""
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is not provider:
        logger.warning(
            "livekit-otel: set_global=True, but a global meter provider was already set "
            "and OpenTelemetry allows setting it once per process; other instrumentations "
            "keep using the earlier one"
        )


def _retire(old: Installed, new_target: ExportTarget) -> None:
    """Flush and shut down replaced providers in the background."""
    logger.warning(
        "livekit-otel: set up again with different settings; spans now go to %s and the "
        "previous provider is flushed and shut down (its meter provider too). To export to "
        "two backends, add a span processor to the returned provider instead of calling "
        "setup twice.",
        redact_url(new_target.url),
    )
    retired: list[TracerProvider | MeterProvider] = [old.provider]
    if old.meter_provider is not None:
        retired.append(old.meter_provider)
    for provider in retired:
        stop_flushing(provider)
        in_background(provider.shutdown)


def in_background(shutdown: Callable[[], object]) -> None:
    """Run a replaced provider's or endpoint's shutdown in a daemon thread."""
    threading.Thread(target=shutdown, name="livekit-otel-retire", daemon=True).start()
