"""``setup_prometheus``: livekit-otel's metrics served over HTTP for Prometheus to scrape.

The exporter (the ``prometheus`` extra) is imported on first use, so the extra stays
optional. In every process LiveKit starts for a job, where module-level code runs again,
setup never raises: one ERROR says what failed and the returned provider records nothing.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

from livekit_otel.recording.registry import in_child_process, in_job_process, is_job_process
from livekit_otel.setup import installed
from livekit_otel.setup.endpoints import resolve_prometheus_address
from livekit_otel.setup.exporters import meter_provider_without_exemplars
from livekit_otel.setup.settings import attributes_digest, build_resource, digest, options_digest

logger = logging.getLogger(__name__)

# livekit-otel is installed from a clone (it is not on PyPI): the extra's install line
PROMETHEUS_INSTALL = "pip install -e '.[prometheus]'"


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

    Needs the ``prometheus`` extra (from a clone of livekit-otel: ``pip install -e
    '.[prometheus]'``): it uses OpenTelemetry's Prometheus exporter, on a registry of its
    own where the exporter release allows one (0.63b1 on; older ones share
    prometheus_client's global registry).
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
            build_resource(service_name, resource_attributes),
            set_global,
            instrument_options,
        )
    except Exception as error:
        if in_job_process():
            return _unserved_job(error, logging.ERROR)
        if in_child_process():
            return _unserved_job(error, logging.INFO)
        raise


class PrometheusPortInUseError(OSError):
    """The Prometheus port is taken; the message says what to do (an ``OSError``)."""


class PrometheusExtraMissingError(ImportError):
    """The ``prometheus`` extra is not installed; the message says how to install it."""


_JOB_PROCESS_ADVICE = (
    ". LiveKit runs each job in a process of its own, and an endpoint serves the metrics of "
    "its own process only: run jobs in threads (WorkerOptions(job_executor_type="
    "JobExecutorType.THREAD)) so the worker's main process serves every session, or send "
    "the metrics with setup_otlp to an OpenTelemetry Collector that Prometheus scrapes"
)


def _unserved_job(error: Exception, level: int) -> MeterProvider:
    """Log why ``setup_prometheus`` serves nothing in this process, once, and return a meter
    provider that records nothing.

    ``level`` is ERROR in a LiveKit job process (its sessions' metrics are lost) and INFO
    in another child process (LiveKit's inference process runs no session).
    """
    if isinstance(error, (ValueError, PrometheusPortInUseError, PrometheusExtraMissingError)):
        problem = str(error)
    else:
        problem = f"unexpected {type(error).__name__} while starting the endpoint"
    if level < logging.ERROR:
        where = "process (started by multiprocessing, not a LiveKit job)"
        advice = ""
    else:
        where = "LiveKit job process, so the metrics of its sessions are not scraped"
        advice = (
            _JOB_PROCESS_ADVICE
            if isinstance(error, PrometheusPortInUseError) and is_job_process()
            else ""
        )
    logger.log(
        level,
        "livekit-otel: setup_prometheus serves nothing in this %s: %s%s",
        where,
        problem,
        advice,
    )
    return MeterProvider(shutdown_on_exit=False)


def _serve(
    address: tuple[str, int],
    resource: Resource,
    set_global: bool,
    instrument_options: Mapping[str, Any] | None,
) -> MeterProvider:
    """Serve a Prometheus endpoint at ``address``, or keep the one serving these settings."""
    host, port = address
    fingerprint = digest(
        (
            "prometheus",
            host,
            port,
            attributes_digest(resource),
            set_global,
            options_digest(instrument_options),
        )
    )
    with installed.lock:
        previous = installed.served()
        if previous is not None and previous.fingerprint == fingerprint:
            return previous.provider
        if previous is not None and (previous.host, previous.port) == (host, port):
            # the same port under other settings: free it for the new endpoint
            installed.forget_served()
            previous.close()
            previous = None
        served = _start_endpoint(host, port, resource, fingerprint)
        try:
            installed.serve(served, instrument_options)
        except BaseException:
            served.close()
            raise
        if set_global:
            installed.set_global_meter(served.provider)
        if previous is not None:
            logger.warning(
                "livekit-otel: setup_prometheus called again with different settings; the "
                "endpoint on %s:%d is replaced by the one on %s:%d",
                previous.host,
                previous.port,
                host,
                served.port,
            )
            installed.in_background(previous.close)
    return served.provider


def _start_endpoint(host: str, port: int, resource: Resource, fingerprint: str) -> installed.Served:
    """A meter provider with a Prometheus reader, served over HTTP on ``host:port``."""
    reader_class, registry, start_http_server = _prometheus_exporter()
    if registry is None:
        reader = reader_class()
        server_registry = importlib.import_module("prometheus_client").REGISTRY
    else:
        reader = reader_class(registry=registry)
        server_registry = registry
    provider = meter_provider_without_exemplars([reader], resource)
    try:
        server, thread = start_http_server(port=port, addr=host, registry=server_registry)
    except OSError as error:
        provider.shutdown()
        if error.errno == errno.EADDRINUSE:
            raise PrometheusPortInUseError(
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
    return installed.Served(fingerprint, provider, host, served_port, server, thread)


def _prometheus_exporter() -> tuple[Any, Any, Callable[..., Any]]:
    """The exporter's reader class, a registry of its own (``None`` on releases before
    0.63b1, which only use the global one) and ``start_http_server``; imported on first
    use, so the extra stays optional."""
    try:
        exporter = importlib.import_module("opentelemetry.exporter.prometheus")
        client = importlib.import_module("prometheus_client")
    except ImportError as error:
        raise PrometheusExtraMissingError(
            f"setup_prometheus needs the Prometheus exporter (missing: {error.name}): install "
            f"livekit-otel's 'prometheus' extra, from your clone of livekit-otel: "
            f"{PROMETHEUS_INSTALL} (or pip install opentelemetry-exporter-prometheus "
            f"prometheus-client)"
        ) from error
    reader_class = exporter.PrometheusMetricReader
    if "registry" in inspect.signature(reader_class).parameters:
        return reader_class, client.CollectorRegistry(), client.start_http_server
    return reader_class, None, client.start_http_server
