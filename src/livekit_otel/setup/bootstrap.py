"""One-call setup: a ``TracerProvider`` (and a ``MeterProvider``) for any OTLP/HTTP backend,
Langfuse, or a Prometheus endpoint.

``setup_otlp`` and ``setup_langfuse`` build a tracer provider (``BatchSpanProcessor``
around an OTLP/HTTP protobuf exporter with gzip), hand it to
``livekit_otel.set_tracer_provider`` and return it. ``setup_otlp`` also builds a meter
provider whose ``PeriodicExportingMetricReader`` posts the metrics to the same backend
(``/v1/metrics``), unless ``metrics=False`` or ``OTEL_METRICS_EXPORTER=none``;
``installed_meter_provider()`` returns it. ``setup_langfuse`` sends no metrics: Langfuse
takes none. ``setup_prometheus`` serves the metrics for Prometheus to scrape and returns
its meter provider; while it serves, the metrics go there and ``setup_otlp`` sends traces
only. None of them writes to ``os.environ`` or sets a process-global OpenTelemetry
provider unless ``set_global=True``.

Calling a setup function again with the same settings returns the providers it already
built. Calling it with different settings (another endpoint, other headers or keys,
another resource or option) replaces them: the new ones are installed first, the old
ones are flushed and shut down in a background thread, and a warning says so.

Inside a LiveKit job the providers are flushed, within ``shutdown_timeout`` seconds, when
the job shuts down: LiveKit ends job processes with ``os._exit``, so ``atexit`` hooks
never run there. Providers built at import time are registered with each job as its
first session starts.

A bad setting (missing Langfuse keys, a URL without a scheme, malformed headers, a
non-positive timeout, a port out of range, ...) raises ``ValueError`` at import time or
worker start, so a deploy fails fast. Inside a running LiveKit job it never takes the call
down: the setup function logs one ERROR on the ``livekit_otel.setup.bootstrap`` logger that says
what to fix, installs nothing, and returns a provider that records and exports nothing
(see ``disabled_provider``), so code that goes on to use the returned provider keeps
working. ``setup_prometheus`` follows the same rule in every process LiveKit starts for a
job, where module-level code runs again (see its docstring for the Prometheus port).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.util.types import AttributeValue

from livekit_otel import instrumentor
from livekit_otel.recording.registry import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    _current_job_context,
    flush_at_every_job_end,
    in_child_process,
    in_job_process,
    is_job_process,
    register_flush_on_shutdown,
    stop_flushing,
)
from livekit_otel.setup.endpoints import (
    ExportTarget,
    otlp_metrics_enabled,
    redact_url,
    resolve_langfuse_target,
    resolve_otlp_metrics_target,
    resolve_otlp_target,
    resolve_prometheus_address,
)
from livekit_otel.setup.exporters import build_meter_provider, build_provider

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "livekit-agent"
PROMETHEUS_EXTRA = "livekit-otel[prometheus]"
_SERVER_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Options:
    """The options the setup functions share."""

    service_name: str | None
    resource_attributes: Mapping[str, AttributeValue] | None
    set_global: bool
    timeout: float | None
    shutdown_timeout: float
    instrument_options: Mapping[str, Any] | None


@dataclass(frozen=True)
class _Installed:
    """What ``setup_otlp`` / ``setup_langfuse`` built, and a digest of its settings.

    ``meter_provider`` is ``setup_otlp``'s OTLP metrics; ``None`` for Langfuse, with
    metrics off, or while a Prometheus endpoint takes the metrics.
    """

    fingerprint: str
    provider: TracerProvider
    meter_provider: MeterProvider | None = None


@dataclass(frozen=True)
class _Served:
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


class _PortInUseError(OSError):
    """The Prometheus port is taken; the message says what to do."""


_lock = threading.RLock()
_installed: _Installed | None = None
_served: _Served | None = None
# the meter provider the setup functions last handed to the plugin (None: none, or taken back)
_handed_meter: MeterProvider | None = None


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

    Raises ``ValueError`` for a URL without ``http://``/``https://`` (the metrics URL
    included), malformed headers or a timeout that is not a positive number of seconds.
    Inside a running LiveKit job it raises nothing: it logs one ERROR that says what to
    fix and returns a provider that records and exports nothing (``disabled_provider``),
    and the job runs untraced.
    """

    def build() -> TracerProvider:
        options = _options(
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
        return _install(target, options, metrics_target)

    return _never_failing_a_job("setup_otlp", build)


def setup_langfuse(
    host: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    set_global: bool = False,
    timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    instrument_options: Mapping[str, Any] | None = None,
) -> TracerProvider:
    """Send livekit-otel's spans to Langfuse and return the provider.

    Each argument defaults to its environment variable: ``LANGFUSE_PUBLIC_KEY``,
    ``LANGFUSE_SECRET_KEY``, ``LANGFUSE_BASE_URL`` or ``LANGFUSE_HOST`` (the host falls
    back to ``https://cloud.langfuse.com``). Spans are posted to
    ``{host}/api/public/otel/v1/traces`` with Basic auth; ``OTEL_EXPORTER_OTLP_*``
    variables are neither read for the endpoint or headers nor written. No metrics are
    sent (Langfuse takes none); ``setup_prometheus`` serves them alongside.

    Takes the same options as ``setup_otlp`` (but ``metrics``). Raises ``ValueError``
    naming every missing key, for a host without ``http://``/``https://`` and for swapped
    keys; inside a running LiveKit job it logs one ERROR instead and returns
    ``disabled_provider()``, as ``setup_otlp`` does.
    """

    def build() -> TracerProvider:
        options = _options(
            service_name,
            resource_attributes,
            set_global,
            timeout,
            shutdown_timeout,
            instrument_options,
        )
        target = resolve_langfuse_target(host, public_key, secret_key, os.environ)
        return _install(target, options, None)

    return _never_failing_a_job("setup_langfuse", build)


def setup_prometheus(
    port: int | None = None,
    host: str | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    set_global: bool = False,
    instrument_options: Mapping[str, Any] | None = None,
) -> MeterProvider:
    """Serve livekit-otel's metrics at ``http://{host}:{port}/metrics`` for Prometheus.

    Needs the ``prometheus`` extra (``pip install 'livekit-otel[prometheus]'``): it uses
    OpenTelemetry's Prometheus exporter, on a registry of its own where the exporter
    release allows one (0.63b1 on; older ones share prometheus_client's global registry).
    ``port`` and ``host`` default to ``OTEL_EXPORTER_PROMETHEUS_PORT`` /
    ``OTEL_EXPORTER_PROMETHEUS_HOST``, else ``9464`` on ``127.0.0.1``; pass
    ``host="0.0.0.0"`` for a Prometheus on another machine or container. Returns the meter
    provider, which ``installed_meter_provider()`` also returns; livekit-otel's metrics go
    there from the next session on. ``service_name`` and ``resource_attributes`` shape
    the ``target_info`` series; ``instrument_options`` are as for ``setup_otlp``.

    An endpoint serves the metrics of its own process. Call it once, at module level in
    the agent's main file (before ``cli.run_app``): a second call with the same settings
    returns the same provider; other settings replace the endpoint. LiveKit runs each job
    in a process of its own by default, and that process runs the module level again; the
    worker's main process already holds the port there, so each job process logs one
    ERROR and serves nothing, and the main process serves no session's metrics. Run jobs
    in threads (``WorkerOptions(job_executor_type=JobExecutorType.THREAD)``; console mode
    does) to serve every session from the main process, or send metrics over OTLP
    (``setup_otlp``) to an OpenTelemetry Collector that Prometheus scrapes.

    Raises ``ValueError`` for a port outside 0-65535 or a host that is a URL, ``OSError``
    when the port is already in use (the message says what to do) and ``ImportError``
    naming the extra when it is not installed. In a LiveKit job process none of these
    raise: one ERROR says what failed and the returned provider records nothing; other
    processes ``multiprocessing`` started (LiveKit's inference process) log it at INFO.
    """
    try:
        address = resolve_prometheus_address(host, port, os.environ)
        if not isinstance(set_global, bool):
            raise ValueError(f"set_global must be True or False, not {set_global!r}")
        return _serve(
            address,
            _build_resource(service_name, resource_attributes),
            set_global,
            instrument_options,
        )
    except Exception as error:
        if in_job_process():
            return _unserved_job(error, logging.ERROR)
        if in_child_process():
            return _unserved_job(error, logging.INFO)
        raise


def installed_meter_provider() -> MeterProvider | None:
    """The meter provider the setup functions built and livekit-otel records to.

    ``setup_prometheus``'s while it serves, else ``setup_otlp``'s OTLP one; ``None`` when
    neither built one (``setup_langfuse``, metrics turned off, nothing set up).
    """
    with _lock:
        return _meter_for_plugin()


def disabled_provider() -> TracerProvider:
    """A provider that records and exports nothing: what setup returns when it failed in a job.

    Its sampler drops every span, it has no span processor and registers no ``atexit``
    hook, so using it (``get_tracer``, ``force_flush``, ``shutdown``, even
    ``add_span_processor``) works and costs next to nothing. livekit-otel is not handed
    this provider: sessions stay untraced unless another provider was set up before.
    """
    return TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)


def _never_failing_a_job(function: str, build: Callable[[], TracerProvider]) -> TracerProvider:
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


def _unserved_job(error: Exception, level: int) -> MeterProvider:
    """Log why ``setup_prometheus`` serves nothing in this process, once, and return a meter
    provider that records nothing.

    ``level`` is ERROR in a LiveKit job process (its sessions' metrics are lost) and INFO
    in another child process (LiveKit's inference process runs no session).
    """
    if isinstance(error, (ValueError, _PortInUseError, _MissingExtraError)):
        problem = str(error)
    else:
        problem = f"unexpected {type(error).__name__} while starting the endpoint"
    if level < logging.ERROR:
        where = "process (started by multiprocessing, not a LiveKit job)"
        advice = ""
    else:
        where = "LiveKit job process, so the metrics of its sessions are not scraped"
        advice = (
            _JOB_PROCESS_ADVICE if isinstance(error, _PortInUseError) and is_job_process() else ""
        )
    logger.log(
        level,
        "livekit-otel: setup_prometheus serves nothing in this %s: %s%s",
        where,
        problem,
        advice,
    )
    return MeterProvider(shutdown_on_exit=False)


_JOB_PROCESS_ADVICE = (
    ". LiveKit runs each job in a process of its own, and an endpoint serves the metrics of "
    "its own process only: run jobs in threads (WorkerOptions(job_executor_type="
    "JobExecutorType.THREAD)) so the worker's main process serves every session, or send "
    "the metrics with setup_otlp to an OpenTelemetry Collector that Prometheus scrapes"
)


def _options(
    service_name: str | None,
    resource_attributes: Mapping[str, AttributeValue] | None,
    set_global: bool,
    timeout: float | None,
    shutdown_timeout: float,
    instrument_options: Mapping[str, Any] | None,
) -> _Options:
    """Check the shared options and bundle them."""
    if timeout is not None and not _positive_seconds(timeout):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not _positive_seconds(shutdown_timeout):
        raise ValueError(
            f"shutdown_timeout must be a positive number of seconds, not {shutdown_timeout!r}"
        )
    return _Options(
        service_name=service_name,
        resource_attributes=resource_attributes,
        set_global=set_global,
        timeout=timeout,
        shutdown_timeout=shutdown_timeout,
        instrument_options=instrument_options,
    )


def _positive_seconds(value: object) -> bool:
    """True for a finite number of seconds above zero (``True``/``False`` are not numbers)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _metrics_wanted(metrics: bool | None) -> bool:
    """``setup_otlp``'s ``metrics`` option, else what ``OTEL_METRICS_EXPORTER`` says."""
    if metrics is None:
        return otlp_metrics_enabled(os.environ)
    if not isinstance(metrics, bool):
        raise ValueError(f"metrics must be True, False or None, not {metrics!r}")
    return metrics


def _install(
    target: ExportTarget, options: _Options, metrics_target: ExportTarget | None
) -> TracerProvider:
    """Install providers for ``target``, or keep those already built for the same settings."""
    global _installed
    resource = _build_resource(options.service_name, options.resource_attributes)
    fingerprint = _fingerprint(target, resource, options, metrics_target)
    with _lock:
        previous = _installed
        if previous is not None and previous.fingerprint == fingerprint:
            installed = previous
        else:
            provider = build_provider(target, resource, options.timeout)
            meter_provider = None
            if metrics_target is not None and _served is None:
                meter_provider = build_meter_provider(metrics_target, resource, options.timeout)
            elif metrics_target is not None:
                logger.info(
                    "livekit-otel: metrics go to the Prometheus endpoint setup_prometheus "
                    "serves; setup_otlp sends traces only"
                )
            try:
                _hand_to_plugin(provider, meter_provider, options.instrument_options)
            except BaseException:
                provider.shutdown()
                if meter_provider is not None:
                    meter_provider.shutdown()
                raise
            if options.set_global:
                _set_global(provider)
                if meter_provider is not None:
                    _set_global_meter(meter_provider)
            installed = _installed = _Installed(fingerprint, provider, meter_provider)
            if previous is not None:
                _retire(previous, target)
        for built in (installed.provider, installed.meter_provider):
            if built is not None:
                flush_at_every_job_end(built, options.shutdown_timeout)
    register_flush_on_shutdown(installed.provider, options.shutdown_timeout)
    return installed.provider


def _serve(
    address: tuple[str, int],
    resource: Resource,
    set_global: bool,
    instrument_options: Mapping[str, Any] | None,
) -> MeterProvider:
    """Serve a Prometheus endpoint at ``address``, or keep the one serving these settings."""
    global _served, _installed
    host, port = address
    fingerprint = _digest(
        (
            "prometheus",
            host,
            port,
            _attributes_digest(resource),
            set_global,
            _options_digest(instrument_options),
        )
    )
    with _lock:
        previous = _served
        if previous is not None and previous.fingerprint == fingerprint:
            return previous.provider
        if previous is not None and (previous.host, previous.port) == (host, port):
            # the same port under other settings: free it for the new endpoint
            _served = None
            previous.close()
            previous = None
        served = _start_endpoint(host, port, resource, fingerprint)
        try:
            _served = served
            _hand_meter_to_plugin(served.provider, instrument_options)
        except BaseException:
            _served = previous
            served.close()
            raise
        if set_global:
            _set_global_meter(served.provider)
        if previous is not None:
            logger.warning(
                "livekit-otel: setup_prometheus called again with different settings; the "
                "endpoint on %s:%d is replaced by the one on %s:%d",
                previous.host,
                previous.port,
                host,
                served.port,
            )
            threading.Thread(target=previous.close, name="livekit-otel-retire", daemon=True).start()
        if _installed is not None and _installed.meter_provider is not None:
            # Prometheus takes the metrics: setup_otlp's OTLP metrics stop
            otlp_metrics = _installed.meter_provider
            _installed = _Installed(_installed.fingerprint, _installed.provider, None)
            stop_flushing(otlp_metrics)
            logger.info(
                "livekit-otel: metrics now go to the Prometheus endpoint; setup_otlp's OTLP "
                "metric exporter is shut down"
            )
            threading.Thread(
                target=otlp_metrics.shutdown, name="livekit-otel-retire", daemon=True
            ).start()
    return served.provider


def _start_endpoint(host: str, port: int, resource: Resource, fingerprint: str) -> _Served:
    """A meter provider with a Prometheus reader, served over HTTP on ``host:port``."""
    reader_class, registry, start_http_server = _prometheus_exporter()
    if registry is None:
        reader = reader_class()
        server_registry = importlib.import_module("prometheus_client").REGISTRY
    else:
        reader = reader_class(registry=registry)
        server_registry = registry
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    try:
        server, thread = start_http_server(port=port, addr=host, registry=server_registry)
    except OSError as error:
        provider.shutdown()
        if error.errno == errno.EADDRINUSE:
            raise _PortInUseError(
                errno.EADDRINUSE,
                f"port {port} on {host} is already in use, so livekit-otel cannot serve "
                f"metrics there: another program (or another worker, or this worker's own "
                f"main process when this is a job process) holds it. Pass another port= "
                f"(or set OTEL_EXPORTER_PROMETHEUS_PORT), stop the other process, or call "
                f"setup_prometheus once per process, at module level",
            ) from None
        raise
    except BaseException:
        provider.shutdown()
        raise
    served_port = int(server.server_port)
    if is_job_process():
        logger.warning(
            "livekit-otel: setup_prometheus serves from a LiveKit job process (port %d): the "
            "endpoint ends with the job, with the metrics of its last turns unscraped, and "
            "another job started meanwhile cannot serve on the same port%s",
            served_port,
            _JOB_PROCESS_ADVICE,
        )
    logger.info(
        "livekit-otel: serving metrics for Prometheus at http://%s:%d/metrics",
        f"[{host}]" if ":" in host else host,
        served_port,
    )
    return _Served(fingerprint, provider, host, served_port, server, thread)


class _MissingExtraError(ImportError):
    """The ``prometheus`` extra is not installed; the message names it."""


def _prometheus_exporter() -> tuple[Any, Any, Callable[..., Any]]:
    """The exporter's reader class, a registry of its own (``None`` on releases before
    0.63b1, which only use the global one) and ``start_http_server``; imported on first
    use, so the extra stays optional."""
    try:
        exporter = importlib.import_module("opentelemetry.exporter.prometheus")
        client = importlib.import_module("prometheus_client")
    except ImportError as error:
        raise _MissingExtraError(
            f"setup_prometheus needs the Prometheus exporter: pip install '{PROMETHEUS_EXTRA}' "
            f"(missing: {error.name})"
        ) from error
    reader_class = exporter.PrometheusMetricReader
    if "registry" in inspect.signature(reader_class).parameters:
        return reader_class, client.CollectorRegistry(), client.start_http_server
    return reader_class, None, client.start_http_server


def _build_resource(
    service_name: str | None, resource_attributes: Mapping[str, AttributeValue] | None
) -> Resource:
    """The resource: arguments over ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.

    When nothing names the service, ``service.name`` is ``"livekit-agent"`` instead of
    the SDK's ``unknown_service``.
    """
    attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name:
        attributes[SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    detected = str(resource.attributes.get(SERVICE_NAME, ""))
    if SERVICE_NAME not in attributes and detected.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _fingerprint(
    target: ExportTarget,
    resource: Resource,
    options: _Options,
    metrics_target: ExportTarget | None,
) -> str:
    """A digest of everything that shapes the providers; holds no secret in clear."""
    metrics_settings = None
    if metrics_target is not None:
        metrics_settings = (metrics_target.url, sorted(metrics_target.headers.items()))
    return _digest(
        (
            target.url,
            sorted(target.headers.items()),
            _attributes_digest(resource),
            options.set_global,
            options.timeout,
            _options_digest(options.instrument_options),
            metrics_settings,
        )
    )


def _digest(settings: object) -> str:
    return hashlib.sha256(repr(settings).encode()).hexdigest()


def _attributes_digest(resource: Resource) -> list[tuple[str, str]]:
    return sorted((key, repr(value)) for key, value in resource.attributes.items())


def _options_digest(options: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return sorted((key, repr(value)) for key, value in (options or {}).items())


def _hand_to_plugin(
    provider: TracerProvider,
    meter_provider: MeterProvider | None,
    instrument_options: Mapping[str, Any] | None,
) -> None:
    """Make ``provider`` the one livekit-otel's spans go to, and hand over the metrics.

    The metrics go to Prometheus while ``setup_prometheus`` serves, else to
    ``meter_provider``; a meter provider handed over before and now replaced is taken back
    (the plugin then records to the global one). A meter provider the user gave
    ``instrument()`` is left alone when the setup brings none.
    """
    global _handed_meter
    wanted = _served.provider if _served is not None else meter_provider
    options = dict(instrument_options or {})
    if not _plugin_instrumented() or options:
        if wanted is not None:
            options["meter_provider"] = wanted
        instrumentor.set_tracer_provider(provider, **options)
    else:
        instrumentor.set_tracer_provider(provider)
        if wanted is not None or _handed_meter is not None:
            instrumentor.set_meter_provider(wanted)
    _handed_meter = wanted


def _hand_meter_to_plugin(
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


def _set_global(provider: TracerProvider) -> None:
    """Make ``provider`` the process-global OpenTelemetry provider, or warn why not."""
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        logger.warning(
            "livekit-otel: set_global=True, but a global tracer provider was already set "
            "and OpenTelemetry allows setting it once per process; other instrumentations "
            "keep using the earlier one"
        )


def _set_global_meter(provider: MeterProvider) -> None:
    """Make ``provider`` the process-global meter provider, or warn why not."""
    metrics.set_meter_provider(provider)
    if metrics.get_meter_provider() is not provider:
        logger.warning(
            "livekit-otel: set_global=True, but a global meter provider was already set "
            "and OpenTelemetry allows setting it once per process; other instrumentations "
            "keep using the earlier one"
        )


def _retire(old: _Installed, new_target: ExportTarget) -> None:
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
        threading.Thread(target=provider.shutdown, name="livekit-otel-retire", daemon=True).start()
