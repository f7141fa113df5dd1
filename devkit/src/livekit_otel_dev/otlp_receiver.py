"""A real OTLP/HTTP traces and metrics receiver for tests, on 127.0.0.1 in a background thread.

It checks what Langfuse, Jaeger and the OpenTelemetry Collector check: the path
(``/v1/traces``, Langfuse's ``/api/public/otel/v1/traces`` or ``/v1/metrics``; anything
else, such as ``/v1/traces/v1/traces`` or Langfuse's path with ``/v1/metrics``, gets 404),
a protobuf body (415 otherwise), gzip or deflate content encoding, and optionally
required headers (401 when one is missing or wrong). Every request is recorded with its
path, headers and decoded spans (``ExportTraceServiceRequest``) or metrics
(``ExportMetricsServiceRequest``: names, units, kinds, temporality, and each data
point's attributes and value, or count, sum and buckets).

Fault modes for tests: ``respond(status=500)``, ``respond(delay=5.0)`` (hang), one-shot
replies with ``times=n``, ``release()`` to end hangs at once; ``refused_url()`` gives an
endpoint where nothing listens.

The pytest fixtures built on it live in the tests (``tests/support/otlp_receiver.py``).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

METRICS_PATH = "/v1/metrics"
ACCEPTED_PATHS = ("/v1/traces", "/api/public/otel/v1/traces", METRICS_PATH)
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedEvent:
    """A span event as the receiver decoded it."""

    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as the receiver decoded it, with the request it came in."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    start_ns: int
    end_ns: int
    events: list[ReceivedEvent]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    path: str
    headers: dict[str, str]

    @property
    def duration_ns(self) -> int:
        """End minus start, in nanoseconds."""
        return self.end_ns - self.start_ns


@dataclass(frozen=True)
class ReceivedPoint:
    """One data point of a metric: its attributes and times, and either ``value`` (a sum
    or gauge) or ``count``, ``sum`` and the buckets (a histogram)."""

    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    value: float | int | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: tuple[int, ...] = ()
    explicit_bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class ReceivedMetric:
    """A metric as the receiver decoded it, with the request it came in.

    ``kind`` is the data field's name (``sum``, ``gauge``, ``histogram``,
    ``exponential_histogram``, ``summary``); ``temporality`` is ``CUMULATIVE``,
    ``DELTA`` or ``""`` (gauges); ``monotonic`` is set for sums only.
    """

    name: str
    description: str
    unit: str
    kind: str
    temporality: str
    monotonic: bool | None
    points: list[ReceivedPoint]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    path: str
    headers: dict[str, str]


@dataclass
class ReceivedRequest:
    """One POST: what came in, the status it gets, and whether that answer went out.

    ``answered`` stays False while the receiver hangs on the request and when the
    client hung up before the answer.
    """

    path: str
    headers: dict[str, str]
    status: int
    spans: list[ReceivedSpan] = field(default_factory=list)
    answered: bool = False
    metrics: list[ReceivedMetric] = field(default_factory=list)


@dataclass(frozen=True)
class Reply:
    """How to answer a request: an HTTP status, after a delay in seconds."""

    status: int = 200
    delay: float = 0.0


class OtlpReceiver:
    """An OTLP/HTTP receiver on a free port of 127.0.0.1; use ``start()``/``stop()``."""

    def __init__(self, accepted_paths: tuple[str, ...] = ACCEPTED_PATHS) -> None:
        self.accepted_paths = accepted_paths
        self._lock = threading.Condition()
        self._requests: list[ReceivedRequest] = []
        self._default = Reply()
        self._one_shot: deque[Reply] = deque()
        self._required_headers: dict[str, str] = {}
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="otlp-receiver",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:43210`` (also a Langfuse host)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def traces_url(self) -> str:
        """The full OTLP traces URL, ``{url}/v1/traces``."""
        return self.url + "/v1/traces"

    def start(self) -> OtlpReceiver:
        """Start serving in a background thread; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """End hung requests and stop serving."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def respond(self, status: int = 200, delay: float = 0.0, times: int | None = None) -> None:
        """Answer ``status`` after ``delay`` s: for the next ``times`` requests, or from now on."""
        reply = Reply(status=status, delay=delay)
        with self._lock:
            if times is None:
                self._default = reply
            else:
                self._one_shot.extend([reply] * times)

    def require_header(self, name: str, value: str) -> None:
        """Answer 401 to requests whose header ``name`` is missing or not ``value``."""
        with self._lock:
            self._required_headers[name.lower()] = value

    def release(self) -> None:
        """End hangs now and answer 200 without delay from now on."""
        with self._lock:
            self._default = Reply()
            self._one_shot.clear()
        self._release.set()

    def clear(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._requests.clear()

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, including rejected and unfinished ones."""
        with self._lock:
            return list(self._requests)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """The spans of requests answered with a 2xx status (what a backend keeps)."""
        with self._lock:
            return [
                span
                for request in self._requests
                if request.answered and 200 <= request.status < 300
                for span in request.spans
            ]

    @property
    def metrics(self) -> list[ReceivedMetric]:
        """The metrics of requests answered with a 2xx status, in the order they came."""
        with self._lock:
            return [
                metric
                for request in self._requests
                if request.answered and 200 <= request.status < 300
                for metric in request.metrics
            ]

    def metrics_named(self, name: str) -> list[ReceivedMetric]:
        """Every accepted record of the metric called ``name``, oldest first."""
        return [metric for metric in self.metrics if metric.name == name]

    def latest(self, name: str) -> ReceivedMetric:
        """The last accepted record of metric ``name`` (with cumulative temporality, the
        totals so far); fails when none arrived."""
        found = self.metrics_named(name)
        if not found:
            raise AssertionError(
                f"no metric {name!r} received; got {sorted({m.name for m in self.metrics})}"
            )
        return found[-1]

    def wait_for_metrics(self, *names: str, timeout: float = 5.0) -> list[ReceivedMetric]:
        """Wait until every metric in ``names`` (at least one metric when none are named)
        was accepted at least once; return all accepted metrics."""

        def ready() -> bool:
            got = {metric.name for metric in self.metrics}
            return set(names) <= got if names else bool(got)

        self._wait(ready, timeout, f"metrics {sorted(names) or 'any'}")
        return self.metrics

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        """The accepted spans called ``name``."""
        return [span for span in self.spans if span.name == name]

    def wait_for_spans(self, count: int, timeout: float = 5.0) -> list[ReceivedSpan]:
        """Wait until at least ``count`` spans were accepted; return them all."""
        self._wait(lambda: len(self.spans) >= count, timeout, f"{count} span(s)")
        return self.spans

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least ``count`` requests arrived (answered or not); return them."""
        self._wait(lambda: len(self.requests) >= count, timeout, f"{count} request(s)")
        return self.requests

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"waited {timeout} s for {what}; got {len(self.spans)} accepted span(s) "
                        f"and {len(self.metrics)} metric record(s) in {len(self._requests)} "
                        f"request(s), paths {sorted({r.path for r in self._requests})}"
                    )
                self._lock.wait(remaining)

    def _next_reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            if path not in self.accepted_paths:
                return Reply(status=404)
            if headers.get("content-type", "").split(";")[0].strip() != PROTOBUF:
                return Reply(status=415)
            for name, value in self._required_headers.items():
                if headers.get(name) != value:
                    return Reply(status=401)
            return self._one_shot.popleft() if self._one_shot else self._default

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length)
        path = handler.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in handler.headers.items()}
        reply = self._next_reply(path, headers)
        request = ReceivedRequest(path=path, headers=headers, status=reply.status)
        try:
            if path == METRICS_PATH:
                request.metrics = _decode_metrics(body, headers, path)
            else:
                request.spans = _decode(body, headers, path)
        except (DecodeError, OSError, zlib.error, EOFError):
            request.status = 400
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
        if reply.delay:
            self._release.wait(reply.delay)
        response = (
            ExportMetricsServiceResponse() if path == METRICS_PATH else ExportTraceServiceResponse()
        )
        payload = response.SerializeToString()
        with self._lock:  # before the client can see the answer, so waiters never lag it
            request.answered = True
            self._lock.notify_all()
        try:
            handler.send_response(request.status)
            handler.send_header("Content-Type", PROTOBUF)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up while we hung: it never got the answer
            with self._lock:
                request.answered = False


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``receiver``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            receiver._handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _inflate(body: bytes, headers: dict[str, str]) -> bytes:
    """The body without its gzip or deflate content encoding."""
    encoding = headers.get("content-encoding", "").lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _decode(body: bytes, headers: dict[str, str], path: str) -> list[ReceivedSpan]:
    """Decode an ``ExportTraceServiceRequest`` body into flat span records."""
    message = ExportTraceServiceRequest()
    message.ParseFromString(_inflate(body, headers))
    spans: list[ReceivedSpan] = []
    for resource_spans in message.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                        attributes=_attributes(span.attributes),
                        status_code=Status.StatusCode.Name(span.status.code).removeprefix(
                            "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        events=[
                            ReceivedEvent(e.name, e.time_unix_nano, _attributes(e.attributes))
                            for e in span.events
                        ],
                        resource=resource,
                        scope_name=scope_spans.scope.name,
                        scope_version=scope_spans.scope.version,
                        path=path,
                        headers=headers,
                    )
                )
    return spans


def _decode_metrics(body: bytes, headers: dict[str, str], path: str) -> list[ReceivedMetric]:
    """Decode an ``ExportMetricsServiceRequest`` body into flat metric records."""
    message = ExportMetricsServiceRequest()
    message.ParseFromString(_inflate(body, headers))
    found: list[ReceivedMetric] = []
    for resource_metrics in message.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data") or ""
                data = getattr(metric, kind) if kind else None
                temporality = ""
                if data is not None and hasattr(data, "aggregation_temporality"):
                    temporality = AggregationTemporality.Name(
                        data.aggregation_temporality
                    ).removeprefix("AGGREGATION_TEMPORALITY_")
                found.append(
                    ReceivedMetric(
                        name=metric.name,
                        description=metric.description,
                        unit=metric.unit,
                        kind=kind,
                        temporality=temporality,
                        monotonic=data.is_monotonic if kind == "sum" else None,
                        points=[_point(point) for point in (data.data_points if data else ())],
                        resource=resource,
                        scope_name=scope_metrics.scope.name,
                        scope_version=scope_metrics.scope.version,
                        path=path,
                        headers=headers,
                    )
                )
    return found


def _point(point: Any) -> ReceivedPoint:
    """One number or histogram data point."""
    common = {
        "attributes": _attributes(point.attributes),
        "start_ns": point.start_time_unix_nano,
        "time_ns": point.time_unix_nano,
    }
    if hasattr(point, "bucket_counts"):
        return ReceivedPoint(
            **common,
            count=point.count,
            sum=point.sum,
            bucket_counts=tuple(point.bucket_counts),
            explicit_bounds=tuple(point.explicit_bounds),
        )
    if hasattr(point, "as_int") or hasattr(point, "as_double"):
        which = point.WhichOneof("value")
        return ReceivedPoint(**common, value=getattr(point, which) if which else None)
    return ReceivedPoint(**common, count=getattr(point, "count", None), sum=point.sum)


def _attributes(pairs: Any) -> dict[str, Any]:
    """A dict from repeated ``KeyValue``."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = _value(pair.value)
    return result


def _value(value: AnyValue) -> Any:
    """The Python value of an ``AnyValue``: str, bool, int, float, bytes, list or dict."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind)


def refused_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
