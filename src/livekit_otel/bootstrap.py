"""One-call setup: a ``TracerProvider`` that exports to Langfuse or any OTLP/HTTP backend.

``setup_otlp`` and ``setup_langfuse`` build a provider (``BatchSpanProcessor`` around an
OTLP/HTTP protobuf exporter with gzip), hand it to ``livekit_otel.set_tracer_provider``
and return it. Neither writes to ``os.environ`` nor sets the process-global
OpenTelemetry provider unless ``set_global=True``.

Calling a setup function again with the same settings returns the provider it already
built. Calling it with different settings (another endpoint, other headers or keys,
another resource or option) replaces that provider: the new one is installed first, the
old one is flushed and shut down in a background thread, and a warning says so.

Inside a LiveKit job the provider is flushed, within ``shutdown_timeout`` seconds, when
the job shuts down: LiveKit ends job processes with ``os._exit``, so ``atexit`` hooks
never run there.

A bad setting (missing Langfuse keys, a URL without a scheme, malformed headers, a
non-positive timeout, ...) raises ``ValueError`` at import time or worker start, so a
deploy fails fast. Inside a running LiveKit job it never takes the call down: the setup
function logs one ERROR on the ``livekit_otel.bootstrap`` logger that says what to fix,
installs nothing, and returns a provider that records and exports nothing (see
``disabled_provider``), so code that goes on to use the returned provider keeps working.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.util.types import AttributeValue

from livekit_otel import instrumentor
from livekit_otel.endpoints import (
    OTLP_HEADERS,
    OTLP_TRACES_HEADERS,
    ExportTarget,
    redact_url,
    resolve_langfuse_target,
    resolve_otlp_target,
)
from livekit_otel.lifecycle import (
    DEFAULT_SHUTDOWN_TIMEOUT,
    _current_job_context,
    register_flush_on_shutdown,
)

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "livekit-agent"


@dataclass(frozen=True)
class _Options:
    """The options both setup functions share."""

    service_name: str | None
    resource_attributes: Mapping[str, AttributeValue] | None
    set_global: bool
    timeout: float | None
    shutdown_timeout: float
    instrument_options: Mapping[str, Any] | None


@dataclass(frozen=True)
class _Installed:
    """The provider a setup function built, and a digest of the settings it was built with."""

    fingerprint: str
    provider: TracerProvider


_lock = threading.Lock()
_installed: _Installed | None = None


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
) -> TracerProvider:
    """Send livekit-otel's spans to an OTLP/HTTP endpoint and return the provider.

    ``endpoint`` is a base URL (``http://localhost:4318``; ``/v1/traces`` is appended) or
    a full traces URL ending in ``/v1/traces`` (used as given). Without it the standard
    variables apply: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (full URL), else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (base URL), else ``http://localhost:4318``.
    ``headers`` defaults to ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` /
    ``OTEL_EXPORTER_OTLP_HEADERS``; pass ``{}`` to send none.

    Options: ``service_name`` (wins over ``OTEL_SERVICE_NAME``; default
    ``"livekit-agent"`` when nothing names the service), ``resource_attributes`` (merged
    over ``OTEL_RESOURCE_ATTRIBUTES``), ``set_global`` (also make it the process-global
    provider), ``timeout`` (seconds per export request; default
    ``OTEL_EXPORTER_OTLP_TIMEOUT`` or 10), ``shutdown_timeout`` (bound of the flush at
    LiveKit job shutdown), ``instrument_options`` (keyword arguments for
    ``set_tracer_provider``).

    Raises ``ValueError`` for a URL without ``http://``/``https://``, malformed headers
    or a timeout that is not a positive number of seconds. Inside a running LiveKit job it
    raises nothing: it logs one ERROR that says what to fix and returns a provider that
    records and exports nothing (``disabled_provider``), and the job runs untraced.
    """
    try:
        options = _options(
            service_name,
            resource_attributes,
            set_global,
            timeout,
            shutdown_timeout,
            instrument_options,
        )
        return _install(resolve_otlp_target(endpoint, headers, os.environ), options)
    except Exception as error:
        if _current_job_context() is None:
            raise
        return _untraced_job("setup_otlp", error)


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
    variables are neither read for the endpoint or headers nor written.

    Takes the same options as ``setup_otlp``. Raises ``ValueError`` naming every missing
    key, for a host without ``http://``/``https://`` and for swapped keys; inside a running
    LiveKit job it logs one ERROR instead and returns ``disabled_provider()``, as
    ``setup_otlp`` does.
    """
    try:
        options = _options(
            service_name,
            resource_attributes,
            set_global,
            timeout,
            shutdown_timeout,
            instrument_options,
        )
        target = resolve_langfuse_target(host, public_key, secret_key, os.environ)
        return _install(target, options)
    except Exception as error:
        if _current_job_context() is None:
            raise
        return _untraced_job("setup_langfuse", error)


def disabled_provider() -> TracerProvider:
    """A provider that records and exports nothing: what setup returns when it failed in a job.

    Its sampler drops every span, it has no span processor and registers no ``atexit``
    hook, so using it (``get_tracer``, ``force_flush``, ``shutdown``, even
    ``add_span_processor``) works and costs next to nothing. livekit-otel is not handed
    this provider: sessions stay untraced unless another provider was set up before.
    """
    return TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)


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


def _install(target: ExportTarget, options: _Options) -> TracerProvider:
    """Install a provider for ``target``, or keep the one already built for the same settings."""
    global _installed
    resource = _build_resource(options.service_name, options.resource_attributes)
    fingerprint = _fingerprint(target, resource, options)
    with _lock:
        previous = _installed
        if previous is not None and previous.fingerprint == fingerprint:
            provider = previous.provider
        else:
            provider = _build_provider(target, resource, options.timeout)
            try:
                _hand_to_plugin(provider, options.instrument_options)
            except BaseException:
                provider.shutdown()
                raise
            if options.set_global:
                _set_global(provider)
            _installed = _Installed(fingerprint, provider)
            if previous is not None:
                _retire(previous.provider, target)
    register_flush_on_shutdown(provider, options.shutdown_timeout)
    return provider


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


def _fingerprint(target: ExportTarget, resource: Resource, options: _Options) -> str:
    """A digest of everything that shapes the provider; holds no secret in clear."""
    settings = (
        target.url,
        sorted(target.headers.items()),
        sorted((key, repr(value)) for key, value in resource.attributes.items()),
        options.set_global,
        options.timeout,
        sorted((key, repr(value)) for key, value in (options.instrument_options or {}).items()),
    )
    return hashlib.sha256(repr(settings).encode()).hexdigest()


def _build_provider(
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


def _drop_env_headers(exporter: OTLPSpanExporter, wanted: Mapping[str, str]) -> None:
    """Remove headers the exporter picked up from ``OTEL_EXPORTER_OTLP_*HEADERS``.

    Some SDK releases merge those variables into explicit headers, which would send, say,
    a Honeycomb key to Langfuse. Only names that come from the variables and are not in
    ``wanted`` are removed, so the SDK's own headers (content type, user agent) stay.
    """
    text = os.environ.get(OTLP_TRACES_HEADERS) or os.environ.get(OTLP_HEADERS) or ""
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


def _hand_to_plugin(provider: TracerProvider, instrument_options: Mapping[str, Any] | None) -> None:
    """Make ``provider`` the one livekit-otel's spans go to."""
    if instrument_options:
        instrumentor.set_tracer_provider(provider, **instrument_options)
    else:
        instrumentor.set_tracer_provider(provider)


def _set_global(provider: TracerProvider) -> None:
    """Make ``provider`` the process-global OpenTelemetry provider, or warn why not."""
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        logger.warning(
            "livekit-otel: set_global=True, but a global tracer provider was already set "
            "and OpenTelemetry allows setting it once per process; other instrumentations "
            "keep using the earlier one"
        )


def _retire(old: TracerProvider, new_target: ExportTarget) -> None:
    """Flush and shut down a replaced provider in the background."""
    logger.warning(
        "livekit-otel: set up again with different settings; spans now go to %s and the "
        "previous provider is flushed and shut down. To export to two backends, add a "
        "span processor to the returned provider instead of calling setup twice.",
        redact_url(new_target.url),
    )
    threading.Thread(target=old.shutdown, name="livekit-otel-retire", daemon=True).start()
