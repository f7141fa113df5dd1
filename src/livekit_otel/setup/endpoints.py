"""Where spans and metrics go: OTLP/HTTP URLs and headers, and the Prometheus address.

Pure functions with no side effects besides log warnings: nothing here builds an exporter
or touches ``os.environ``. Every error is a ``ValueError`` that names the argument or
environment variable to fix and never repeats a header value or a key.

URL rules:

- ``setup_otlp(endpoint=...)`` accepts a base URL (``http://host:4318``) or a full traces
  URL (``http://host:4318/v1/traces``): a URL whose path ends in ``/v1/traces`` is used
  as given, any other gets ``/v1/traces`` appended.
- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is a full URL and is used as given.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL and gets ``/v1/traces`` appended; when it
  already ends in ``/v1/traces`` (other exporters would then post to
  ``/v1/traces/v1/traces`` and lose every span) the suffix is used once and a warning
  says what to set instead.
- Langfuse: ``{host}/api/public/otel/v1/traces``; a host that already carries
  ``/api/public/otel`` or the full traces path is accepted too.

Metrics (``setup_otlp``) go to the same backend as the spans unless the metrics variables
say otherwise:

- ``setup_otlp(endpoint=...)``: ``/v1/metrics`` under the same base URL (a full traces URL
  loses its ``/v1/traces`` first); ``headers=`` applies to both signals.
- ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is a full URL and is used as given.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL and gets ``/v1/metrics`` appended (a
  trailing ``/v1/traces`` is dropped first, as for the spans).
- Only ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set, ending in ``/v1/traces``: the same URL
  with ``/v1/metrics`` (the standard exporters would post to ``localhost:4318`` instead).
- Otherwise ``http://localhost:4318/v1/metrics``.
- Headers: ``OTEL_EXPORTER_OTLP_METRICS_HEADERS``, else ``OTEL_EXPORTER_OTLP_HEADERS``, else
  (when the URL came from the traces variable) ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``.
- ``OTEL_METRICS_EXPORTER``: unset or listing ``otlp`` sends metrics; ``none`` (or a list
  without ``otlp``, such as ``prometheus``) sends none.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
DEFAULT_OTLP_ENDPOINT = "http://localhost:4318"
DEFAULT_LANGFUSE_HOST = "https://cloud.langfuse.com"
LANGFUSE_OTEL_PATH = "/api/public/otel"

OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
OTLP_TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTLP_METRICS_ENDPOINT = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
OTLP_METRICS_HEADERS = "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
PROMETHEUS_HOST = "OTEL_EXPORTER_PROMETHEUS_HOST"
PROMETHEUS_PORT = "OTEL_EXPORTER_PROMETHEUS_PORT"
DEFAULT_PROMETHEUS_HOST = "127.0.0.1"
DEFAULT_PROMETHEUS_PORT = 9464
LANGFUSE_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
LANGFUSE_SECRET_KEY = "LANGFUSE_SECRET_KEY"
LANGFUSE_HOST = "LANGFUSE_HOST"
LANGFUSE_BASE_URL = "LANGFUSE_BASE_URL"
# the variables Langfuse's own SDK reads: a LANGFUSE_* variable close to one of these but not
# one of them is most likely a typo (LANGFUSE_HOTS)
LANGFUSE_VARIABLES = frozenset(
    {
        LANGFUSE_PUBLIC_KEY,
        LANGFUSE_SECRET_KEY,
        LANGFUSE_HOST,
        LANGFUSE_BASE_URL,
        "LANGFUSE_RELEASE",
        "LANGFUSE_TRACING_ENVIRONMENT",
        "LANGFUSE_TRACING_ENABLED",
        "LANGFUSE_DEBUG",
        "LANGFUSE_SAMPLE_RATE",
        "LANGFUSE_TIMEOUT",
        "LANGFUSE_FLUSH_AT",
        "LANGFUSE_FLUSH_INTERVAL",
        "LANGFUSE_MEDIA_UPLOAD_ENABLED",
        "LANGFUSE_MEDIA_UPLOAD_THREAD_COUNT",
        "LANGFUSE_PROMPT_CACHE_DEFAULT_TTL_SECONDS",
    }
)
# last path segments after /v1/ that look like a signal path but are none: no OTLP receiver
# serves them, so every export would be a 404
_SIGNALS = ("traces", "metrics", "logs")
_WRONG_SIGNALS = frozenset({"trace", "span", "spans", "tracing", "metric", "log"})

_GRPC_PORT = 4317
_HEADERS_FORMAT_HINT = (
    "expected comma-separated key=value pairs with URL-encoded values, "
    "e.g. 'x-api-key=KEY,x-tenant=NAME'"
)

# RFC 7230 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A URL-encoded value as the OTLP exporter specification writes it: printable ASCII
# without space, double quote, comma, semicolon and backslash.
_ENCODED_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]*")
# The form most SDKs also accept: the same plus spaces, taken literally (not decoded).
_LITERAL_VALUE = re.compile(r"[ !#-+\--:<-\[\]-~]*")
_ENTRY_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True, repr=False)
class ExportTarget:
    """An OTLP/HTTP signal URL and the headers to send with every export request."""

    url: str
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.headers)) or "none"
        return f"ExportTarget(url={redact_url(self.url)!r}, headers=<{names}>)"


def redact_url(url: str) -> str:
    """Return ``url`` without user info, query or fragment, safe to show in a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_otlp_headers(text: str, source: str) -> dict[str, str]:
    """Parse an ``OTEL_EXPORTER_OTLP_HEADERS``-style string into a header dict.

    ``source`` names where the text came from; it is the only thing besides entry
    positions and header names that an error message mentions.
    Header names are lower-cased; URL-encoded values are decoded, values that contain
    spaces are taken literally (as the OpenTelemetry SDKs do).
    """
    headers: dict[str, str] = {}
    entries = _ENTRY_SEPARATOR.split(text.strip())
    for position, entry in enumerate(entries, start=1):
        if not entry:
            continue
        name, sep, raw_value = entry.partition("=")
        name = name.strip()
        raw_value = raw_value.strip()
        where = f"{source} is malformed: entry {position} of {len(entries)}"
        if not sep:
            raise ValueError(f"{where} has no '=' ({_HEADERS_FORMAT_HINT})")
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(
                f"{where} does not start with a valid header name ({_HEADERS_FORMAT_HINT})"
            )
        if _ENCODED_VALUE.fullmatch(raw_value):
            value = unquote(raw_value)
        elif _LITERAL_VALUE.fullmatch(raw_value):
            value = raw_value
        else:
            raise ValueError(
                f"{where} (header {name.lower()!r}) has a value with characters that must be "
                f"URL-encoded ({_HEADERS_FORMAT_HINT})"
            )
        _check_header(name, value, source)
        headers[name.lower()] = value
    return headers


def resolve_otlp_target(
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    environ: Mapping[str, str],
) -> ExportTarget:
    """Resolve the traces URL and headers for ``setup_otlp``.

    Each setting is taken from its argument when given, else from the standard
    ``OTEL_EXPORTER_OTLP_*`` variables in ``environ``, else the default
    (``http://localhost:4318/v1/traces``, no headers). ``headers={}`` sends no headers
    even when ``OTEL_EXPORTER_OTLP_HEADERS`` is set.
    """
    _check_text(endpoint, "endpoint=", "a URL such as 'http://localhost:4318'")
    url = _resolve_otlp_url(endpoint, environ)
    resolved = _env_headers(environ) if headers is None else _checked_headers(headers, "headers=")
    return ExportTarget(url=url, headers=MappingProxyType(resolved))


PHOENIX_PORT = 6006
PHOENIX_COLLECTOR_ENDPOINT = "PHOENIX_COLLECTOR_ENDPOINT"
OPENINFERENCE_PROJECT = "openinference.project.name"


def otlp_conventions(
    target: ExportTarget,
    resource_attributes: Mapping[str, Any] | None,
    environ: Mapping[str, str],
) -> str:
    """The conventions ``setup_otlp`` writes by default: ``openinference`` for Arize Phoenix.

    A traces URL is taken for Phoenix when its port is Phoenix's (6006), its host names
    Phoenix (``app.phoenix.arize.com``, a ``phoenix`` service), it starts with
    ``PHOENIX_COLLECTOR_ENDPOINT``, or the resource names an OpenInference project
    (``openinference.project.name``, Phoenix's project key). Any other backend gets the
    OpenTelemetry GenAI keys (``genai``).
    """
    parts = urlsplit(target.url)
    collector = environ.get(PHOENIX_COLLECTOR_ENDPOINT, "").strip()
    if (
        parts.port == PHOENIX_PORT
        or "phoenix" in (parts.hostname or "")
        or (collector and target.url.startswith(collector.rstrip("/")))
        or OPENINFERENCE_PROJECT in (resource_attributes or {})
        or OPENINFERENCE_PROJECT in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    ):
        return "openinference"
    return "genai"


def otlp_metrics_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``OTEL_METRICS_EXPORTER`` lets ``setup_otlp`` send metrics.

    Unset or blank: yes. Otherwise only when its comma-separated list names ``otlp``;
    ``none`` (or only ``prometheus``, ``console``, ...) turns OTLP metrics off.
    """
    names = {name.strip().lower() for name in environ.get(METRICS_EXPORTER, "").split(",")}
    names.discard("")
    return not names or "otlp" in names


def resolve_otlp_metrics_target(
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    environ: Mapping[str, str],
) -> ExportTarget:
    """Resolve the metrics URL and headers for ``setup_otlp`` (see the module docstring).

    The arguments are ``setup_otlp``'s own: an ``endpoint`` or ``headers`` given there
    apply to the metrics too, so both signals go to one backend.
    """
    _check_text(endpoint, "endpoint=", "a URL such as 'http://localhost:4318'")
    url, from_traces_variable = _resolve_metrics_url(endpoint, environ)
    if headers is not None:
        resolved = _checked_headers(headers, "headers=")
    else:
        variables = [OTLP_METRICS_HEADERS, OTLP_HEADERS]
        if from_traces_variable:
            variables.insert(1, OTLP_TRACES_HEADERS)
        resolved = _env_headers(environ, variables)
    return ExportTarget(url=url, headers=MappingProxyType(resolved))


def resolve_prometheus_address(
    host: str | None, port: int | None, environ: Mapping[str, str]
) -> tuple[str, int]:
    """The host and port ``setup_prometheus`` serves on: arguments, else
    ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``OTEL_EXPORTER_PROMETHEUS_PORT``, else
    ``127.0.0.1:9464``. Port 0 lets the system pick a free port."""
    _check_text(host, "host=", "a host name or IP address such as '127.0.0.1'")
    if port is None:
        raw = environ.get(PROMETHEUS_PORT, "").strip()
        if raw:
            try:
                port = int(raw)
            except ValueError:
                raise ValueError(
                    f"{PROMETHEUS_PORT} must be a port number from 1 to 65535, not {raw!r}"
                ) from None
            _check_port(port, PROMETHEUS_PORT)
        else:
            port = DEFAULT_PROMETHEUS_PORT
    else:
        _check_port(port, "port=")
    if host is None:
        host = environ.get(PROMETHEUS_HOST, "").strip() or DEFAULT_PROMETHEUS_HOST
        source = PROMETHEUS_HOST
    else:
        source = "host="
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"{source} must be a host name or IP address, such as 127.0.0.1")
    host = host.strip()
    if "/" in host or any(ch.isspace() for ch in host):
        raise ValueError(
            f"{source} must be a host name or IP address to listen on (127.0.0.1, 0.0.0.0, "
            f"::), not a URL; the port goes in {'port=' if source == 'host=' else PROMETHEUS_PORT}"
        )
    return host.removeprefix("[").removesuffix("]"), port


def _check_port(port: object, source: str) -> None:
    """Reject anything but a whole number from 0 to 65535 (``True`` is not a port)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(
            f"{source} must be a port number from 1 to 65535 (0 picks a free port), not {port!r}"
        )


def resolve_langfuse_target(
    host: str | None,
    public_key: str | None,
    secret_key: str | None,
    environ: Mapping[str, str],
) -> ExportTarget:
    """Resolve the Langfuse OTLP traces URL and Basic auth header for ``setup_langfuse``.

    Arguments win over ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY`` and
    ``LANGFUSE_BASE_URL`` / ``LANGFUSE_HOST``; the host defaults to Langfuse Cloud
    (``https://cloud.langfuse.com``) as in Langfuse's own SDK. Raises ``ValueError``
    naming every missing key.
    """
    _check_text(host, "host=", "a URL such as 'https://cloud.langfuse.com'")
    _check_text(public_key, "public_key=", "the Langfuse public key ('pk-lf-...')")
    _check_text(secret_key, "secret_key=", "the Langfuse secret key ('sk-lf-...')")
    public = _setting(public_key, environ, LANGFUSE_PUBLIC_KEY)
    secret = _setting(secret_key, environ, LANGFUSE_SECRET_KEY)
    missing = [
        (variable, argument)
        for value, variable, argument in (
            (public, LANGFUSE_PUBLIC_KEY, "public_key"),
            (secret, LANGFUSE_SECRET_KEY, "secret_key"),
        )
        if value is None
    ]
    if public is None or secret is None:
        variables = " and ".join(variable for variable, _ in missing)
        arguments = ", ".join(f"{argument}=..." for _, argument in missing)
        raise ValueError(f"Langfuse is not configured: set {variables} (or pass {arguments})")
    _check_key_kinds(public, secret)

    base, source = _langfuse_host(host, environ)
    url = _langfuse_traces_url(_checked_url(base, source))
    token = base64.b64encode(f"{public}:{secret}".encode()).decode("ascii")
    return ExportTarget(url=url, headers=MappingProxyType({"authorization": f"Basic {token}"}))


def _resolve_otlp_url(endpoint: str | None, environ: Mapping[str, str]) -> str:
    """The traces URL for ``setup_otlp`` from the argument, else the environment."""
    if endpoint is not None and endpoint.strip():
        return _with_traces_path(_checked_url(endpoint.strip(), "endpoint="))
    full = environ.get(OTLP_TRACES_ENDPOINT, "").strip()
    if full:
        return urlunsplit(_checked_url(full, OTLP_TRACES_ENDPOINT))
    base = environ.get(OTLP_ENDPOINT, "").strip()
    if not base:
        logger.info(
            "livekit-otel: no endpoint given (endpoint=, %s or %s), so spans go to %s, "
            "where a local OpenTelemetry Collector listens",
            OTLP_ENDPOINT,
            OTLP_TRACES_ENDPOINT,
            DEFAULT_OTLP_ENDPOINT + TRACES_PATH,
        )
        return DEFAULT_OTLP_ENDPOINT + TRACES_PATH
    parts = _checked_url(base, OTLP_ENDPOINT)
    if parts.path.rstrip("/").endswith(TRACES_PATH):
        full_url = parts._replace(path=parts.path.rstrip("/"))
        base_only = full_url._replace(path=full_url.path[: -len(TRACES_PATH)])
        logger.warning(
            "%s ends with %s, but it is a base URL: OTLP exporters append %s to it and "
            "post to .../v1/traces/v1/traces, where every span is lost. livekit-otel sends "
            "to %s; set %s=%s or %s=%s instead.",
            OTLP_ENDPOINT,
            TRACES_PATH,
            TRACES_PATH,
            redact_url(urlunsplit(full_url)),
            OTLP_ENDPOINT,
            redact_url(urlunsplit(base_only)),
            OTLP_TRACES_ENDPOINT,
            redact_url(urlunsplit(full_url)),
        )
        return urlunsplit(full_url)
    return _with_traces_path(parts)


def _with_traces_path(parts: SplitResult) -> str:
    """``parts`` as a URL whose path ends in ``/v1/traces`` (appended when missing)."""
    path = parts.path.rstrip("/")
    if not path.endswith(TRACES_PATH):
        path += TRACES_PATH
    return urlunsplit(parts._replace(path=path))


def _resolve_metrics_url(endpoint: str | None, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The metrics URL for ``setup_otlp``, and whether it came from the traces variable.

    The traces URL was resolved first, from the same settings, and warned about a gRPC
    port or a base URL ending in ``/v1/traces``: only settings it did not read warn here.
    """
    if endpoint is not None and endpoint.strip():
        parts = _checked_url(endpoint.strip(), "endpoint=", warn=False)
        return _with_signal_path(parts, METRICS_PATH), False
    full = environ.get(OTLP_METRICS_ENDPOINT, "").strip()
    if full:
        parts = _checked_url(full, OTLP_METRICS_ENDPOINT)
        if parts.path.rstrip("/").endswith(TRACES_PATH):
            logger.warning(
                "%s ends with %s: metrics posted there are rejected by most backends; it "
                "should end with %s.",
                OTLP_METRICS_ENDPOINT,
                TRACES_PATH,
                METRICS_PATH,
            )
        return urlunsplit(parts), False
    base = environ.get(OTLP_ENDPOINT, "").strip()
    traces = environ.get(OTLP_TRACES_ENDPOINT, "").strip()
    if base:
        # read for the spans too unless the traces variable took precedence there
        parts = _checked_url(base, OTLP_ENDPOINT, warn=bool(traces))
        return _with_signal_path(parts, METRICS_PATH), False
    if traces:
        parts = _checked_url(traces, OTLP_TRACES_ENDPOINT, warn=False)
        if parts.path.rstrip("/").endswith(TRACES_PATH):
            return _with_signal_path(parts, METRICS_PATH), True
    return DEFAULT_OTLP_ENDPOINT + METRICS_PATH, False


def _with_signal_path(parts: SplitResult, signal_path: str) -> str:
    """``parts`` as the URL of one signal: a trailing ``/v1/traces`` or ``/v1/metrics`` is
    replaced by ``signal_path``, any other path gets it appended."""
    path = parts.path.rstrip("/")
    for known in (TRACES_PATH, METRICS_PATH):
        if path.endswith(known):
            path = path[: -len(known)]
            break
    return urlunsplit(parts._replace(path=path + signal_path))


def _langfuse_traces_url(parts: SplitResult) -> str:
    """The Langfuse OTLP traces URL under a Langfuse host (or its OTel base)."""
    path = parts.path.rstrip("/")
    if not path.endswith(LANGFUSE_OTEL_PATH + TRACES_PATH):
        suffix = (
            TRACES_PATH if path.endswith(LANGFUSE_OTEL_PATH) else LANGFUSE_OTEL_PATH + TRACES_PATH
        )
        path += suffix
    return urlunsplit(parts._replace(path=path))


def _langfuse_host(host: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """The Langfuse base URL and the name of the setting it came from."""
    if host is not None and host.strip():
        return host.strip(), "host="
    base_url = environ.get(LANGFUSE_BASE_URL, "").strip()
    legacy = environ.get(LANGFUSE_HOST, "").strip()
    if base_url and legacy and base_url.rstrip("/") != legacy.rstrip("/"):
        logger.warning(
            "%s and %s are both set and differ; livekit-otel uses %s.",
            LANGFUSE_BASE_URL,
            LANGFUSE_HOST,
            LANGFUSE_BASE_URL,
        )
    if base_url:
        return base_url, LANGFUSE_BASE_URL
    if legacy:
        return legacy, LANGFUSE_HOST
    logger.info(
        "livekit-otel: no Langfuse host given (host=, %s or %s), so spans go to Langfuse "
        "Cloud at %s; set %s for another region (https://us.cloud.langfuse.com) or a "
        "self-hosted Langfuse",
        LANGFUSE_BASE_URL,
        LANGFUSE_HOST,
        DEFAULT_LANGFUSE_HOST,
        LANGFUSE_HOST,
    )
    return DEFAULT_LANGFUSE_HOST, "the default Langfuse host"


def _checked_url(url: str, source: str, warn: bool = True) -> SplitResult:
    """Split ``url`` after checking it is an absolute http(s) URL; ``source`` names it.

    ``warn=False`` skips the warning about the gRPC port (for a setting already read).
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{source} must be a URL starting with http:// or https:// "
            "(for example http://localhost:4318 or https://cloud.langfuse.com)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{source} has an invalid port number") from None
    if not parts.hostname:
        raise ValueError(f"{source} has no host name")
    _check_signal_path(parts.path, source)
    if warn and port == _GRPC_PORT:
        logger.warning(
            "%s uses port %d, the OTLP/gRPC port; livekit-otel sends OTLP/HTTP, "
            "which collectors usually receive on port 4318.",
            source,
            _GRPC_PORT,
        )
    return parts


def _check_signal_path(path: str, source: str) -> None:
    """Reject a path no OTLP receiver serves: ``/v1/trace``, ``/v1/spans``, ``/v1/metric``,
    or ``/v1/traces`` twice. The error names the setting and the path, never the host."""
    segments = [segment for segment in path.split("/") if segment]
    wrong = ""
    if len(segments) >= 2 and segments[-2] == "v1" and segments[-1].lower() in _WRONG_SIGNALS:
        wrong = "/v1/" + segments[-1]
    elif path.rstrip("/").endswith(TRACES_PATH + TRACES_PATH):
        wrong = TRACES_PATH + TRACES_PATH
    if wrong:
        raise ValueError(
            f"{source} ends with {wrong}, a path no OTLP receiver serves (every export would "
            f"be refused): give the base URL (such as http://localhost:4318) or the full URL "
            f"ending in /v1/traces (/v1/metrics for metrics)"
        )


def _env_headers(
    environ: Mapping[str, str], variables: Sequence[str] = (OTLP_TRACES_HEADERS, OTLP_HEADERS)
) -> dict[str, str]:
    """Headers from the first of ``variables`` that is set (traces: the traces variable,
    else ``OTEL_EXPORTER_OTLP_HEADERS``)."""
    for variable in variables:
        text = environ.get(variable, "")
        if text.strip():
            return parse_otlp_headers(text, variable)
    return {}


def _check_text(value: object, source: str, accepted: str) -> None:
    """Reject an argument that is neither ``None`` nor a string, naming what it takes.

    The value itself is not repeated: it may be a key.
    """
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{source} must be a string, {accepted}, not a {type(value).__name__}")


def _checked_headers(headers: object, source: str) -> dict[str, str]:
    """A lower-cased copy of explicit ``headers`` after checking names and values.

    A string is read as ``OTEL_EXPORTER_OTLP_HEADERS`` is (``'name=value,name2=value2'``).
    """
    if isinstance(headers, str):
        return parse_otlp_headers(headers, source)
    if not isinstance(headers, Mapping):
        raise ValueError(
            f"{source} must be a dict of header names to values, such as "
            f"{{'x-api-key': 'KEY'}} (or a string 'x-api-key=KEY,x-team=NAME'), "
            f"not a {type(headers).__name__}"
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{source} has a header name that is not a valid HTTP token")
        if not isinstance(value, str):
            raise ValueError(f"{source} header {name.lower()!r} must have a str value")
        _check_header(name, value, source)
        checked[name.lower()] = value
    return checked


def _check_header(name: str, value: str, source: str) -> None:
    """Reject a value that HTTP cannot carry, naming the header but not the value."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"{source}: the value of header {name.lower()!r} contains a line break")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"{source}: the value of header {name.lower()!r} has characters HTTP headers "
            "cannot carry"
        ) from None


def _setting(argument: str | None, environ: Mapping[str, str], variable: str) -> str | None:
    """The argument if non-blank, else the environment variable if non-blank, else None."""
    for candidate in (argument, environ.get(variable)):
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _check_key_kinds(public: str, secret: str) -> None:
    """Catch swapped Langfuse keys by their documented prefixes (never echoing a key)."""
    if public.startswith("sk-lf-"):
        raise ValueError(
            "the Langfuse public key looks like a secret key (it starts with 'sk-lf-'): "
            f"check {LANGFUSE_PUBLIC_KEY} / public_key= (are the two keys swapped?)"
        )
    if secret.startswith("pk-lf-"):
        raise ValueError(
            "the Langfuse secret key looks like a public key (it starts with 'pk-lf-'): "
            f"check {LANGFUSE_SECRET_KEY} / secret_key= (are the two keys swapped?)"
        )
