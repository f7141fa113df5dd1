"""setup_otlp / setup_langfuse against a real OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import importlib.util
import logging
import multiprocessing
import os
import re
import socket
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

from livekit_otel.recording import registry as lifecycle
from livekit_otel.recording.registry import flush_on_shutdown
from livekit_otel.setup import bootstrap
from livekit_otel.setup.bootstrap import setup_langfuse, setup_otlp, setup_prometheus
from livekit_otel.setup.endpoints import (
    resolve_langfuse_target,
    resolve_otlp_metrics_target,
    resolve_otlp_target,
    resolve_prometheus_address,
)

PUBLIC = "pk-lf-public-1234"
SECRET = "sk-lf-SECRET-5678"
HEADER_SECRET = "hdr-SECRET-9999"


@dataclass
class PluginStub:
    """Stands in for livekit_otel.instrumentor's set_tracer_provider / set_meter_provider.

    ``calls`` has each tracer provider with its options, ``meters`` each meter provider
    handed over (``meter_provider=`` of ``set_tracer_provider``, or ``set_meter_provider``).
    """

    calls: list[tuple[TracerProvider, dict[str, Any]]] = field(default_factory=list)
    meters: list[MeterProvider | None] = field(default_factory=list)

    def set_tracer_provider(self, provider: TracerProvider, **options: Any) -> None:
        if "meter_provider" in options:
            self.meters.append(options.pop("meter_provider"))
        self.calls.append((provider, options))

    def set_meter_provider(self, provider: MeterProvider | None, **options: Any) -> None:
        self.meters.append(provider)


@dataclass(eq=False)
class FakeJobContext:
    """Records shutdown callbacks like ``JobContext.add_shutdown_callback`` receives them."""

    callbacks: list[Any] = field(default_factory=list)

    def add_shutdown_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)


@pytest.fixture(autouse=True)
def plugin(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> Iterator[PluginStub]:
    """Clean env and bootstrap state, a stub plugin; afterwards shut down what was built."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(bootstrap, "_installed", None)
    monkeypatch.setattr(bootstrap, "_served", None)
    monkeypatch.setattr(bootstrap, "_handed_meter", None)
    monkeypatch.setattr(bootstrap, "_plugin_instrumented", lambda: False)
    monkeypatch.setattr(lifecycle, "_every_job", {})
    stub = PluginStub()
    if importlib.util.find_spec("livekit_otel.instrumentor") is not None:
        import livekit_otel.instrumentor as instrumentor

        monkeypatch.setattr(instrumentor, "set_tracer_provider", stub.set_tracer_provider)
        monkeypatch.setattr(instrumentor, "set_meter_provider", stub.set_meter_provider)
    else:
        fake = types.ModuleType("livekit_otel.instrumentor")
        fake.set_tracer_provider = stub.set_tracer_provider  # type: ignore[attr-defined]
        fake.set_meter_provider = stub.set_meter_provider  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "livekit_otel.instrumentor", fake)
    yield stub
    otlp_receiver.release()
    if bootstrap._served is not None:
        bootstrap._served.close()
    for provider, _ in stub.calls:
        provider.shutdown()
    for meter_provider in stub.meters:
        if meter_provider is not None and not meter_provider._shutdown:
            meter_provider.shutdown()


def emit_span(provider: TracerProvider, name: str = "unit", **attributes: Any) -> None:
    """End one span on ``provider`` and flush it."""
    provider.get_tracer("livekit-otel-test").start_span(name, attributes=attributes).end()
    provider.force_flush()


def basic(public: str, secret: str) -> str:
    """The Basic auth header value Langfuse expects."""
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


# --- Langfuse ---------------------------------------------------------------------------


def test_langfuse_span_arrives_at_otel_path_with_basic_auth(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.require_header("authorization", basic(PUBLIC, SECRET))
    provider = setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)

    emit_span(provider, "llm_node", model="m", tokens=3, ratio=0.5, ok=True, tags=["a", "b"])

    (span,) = otlp_receiver.wait_for_spans(1)
    assert span.path == "/api/public/otel/v1/traces"
    assert span.headers["authorization"] == basic(PUBLIC, SECRET)
    assert span.headers["content-encoding"] == "gzip"
    assert span.name == "llm_node"
    assert span.attributes == {
        "model": "m",
        "tokens": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", "b"],
    }


def test_langfuse_reads_keys_and_host_from_env(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", otlp_receiver.url)
    otlp_receiver.require_header("authorization", basic(PUBLIC, SECRET))

    emit_span(setup_langfuse())

    assert otlp_receiver.wait_for_spans(1)[0].path == "/api/public/otel/v1/traces"


def test_langfuse_base_url_env_is_accepted_and_wins_over_host(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_BASE_URL", otlp_receiver.url)
    monkeypatch.setenv("LANGFUSE_HOST", refused_url())

    emit_span(setup_langfuse(public_key=PUBLIC, secret_key=SECRET))

    assert otlp_receiver.wait_for_spans(1)[0].path == "/api/public/otel/v1/traces"


@pytest.mark.parametrize("suffix", ["", "/", "/api/public/otel", "/api/public/otel/v1/traces"])
def test_langfuse_host_spellings_reach_the_same_path(
    otlp_receiver: OtlpReceiver, suffix: str
) -> None:
    emit_span(setup_langfuse(otlp_receiver.url + suffix, PUBLIC, SECRET))

    assert otlp_receiver.wait_for_spans(1)[0].path == "/api/public/otel/v1/traces"


def test_langfuse_defaults_to_langfuse_cloud() -> None:
    target = resolve_langfuse_target(None, PUBLIC, SECRET, {})

    assert target.url == "https://cloud.langfuse.com/api/public/otel/v1/traces"


def test_env_otlp_headers_are_not_sent_to_langfuse(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-other-backend={HEADER_SECRET}")

    emit_span(setup_langfuse(otlp_receiver.url, PUBLIC, SECRET))

    headers = otlp_receiver.wait_for_spans(1)[0].headers
    assert "x-other-backend" not in headers
    assert HEADER_SECRET not in repr(headers)


# --- OTLP -------------------------------------------------------------------------------


def test_otlp_follows_standard_env_variables(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc%20def,x-tenant=t1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "my-agent")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=voice")

    emit_span(setup_otlp(), "agent_turn", turn=1)

    (span,) = otlp_receiver.wait_for_spans(1)
    assert span.path == "/v1/traces"
    assert span.attributes == {"turn": 1}
    assert span.headers["x-api-key"] == "abc def"
    assert span.headers["x-tenant"] == "t1"
    assert span.headers["content-encoding"] == "gzip"
    assert span.resource["service.name"] == "my-agent"
    assert span.resource["deployment.environment"] == "test"
    assert span.resource["team"] == "voice"


def test_otlp_traces_endpoint_env_is_used_as_given(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.traces_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", refused_url())

    emit_span(setup_otlp())

    assert otlp_receiver.wait_for_spans(1)[0].path == "/v1/traces"


def test_otlp_traces_headers_env_wins_over_generic_headers() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-generic=1",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-traces=2",
    }

    assert dict(resolve_otlp_target(None, None, environ).headers) == {"x-traces": "2"}


def test_otlp_default_endpoint_is_local_collector() -> None:
    assert resolve_otlp_target(None, None, {}).url == "http://localhost:4318/v1/traces"


@pytest.mark.parametrize("path", ["", "/", "/v1/traces", "/v1/traces/"])
def test_explicit_endpoint_accepts_base_or_full_url(otlp_receiver: OtlpReceiver, path: str) -> None:
    emit_span(setup_otlp(otlp_receiver.url + path))

    assert otlp_receiver.wait_for_spans(1)[0].path == "/v1/traces"


def test_explicit_headers_replace_env_headers(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-env-only={HEADER_SECRET}")

    emit_span(setup_otlp(otlp_receiver.url, {"X-Honeycomb-Team": "key"}))

    headers = otlp_receiver.wait_for_spans(1)[0].headers
    assert headers["x-honeycomb-team"] == "key"
    assert "x-env-only" not in headers


def test_endpoint_env_ending_in_v1_traces_warns_and_still_delivers(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.traces_url)

    with caplog.at_level(logging.WARNING):
        emit_span(setup_otlp())

    assert otlp_receiver.wait_for_spans(1)[0].path == "/v1/traces"
    (record,) = [r for r in caplog.records if "OTEL_EXPORTER_OTLP_ENDPOINT" in r.getMessage()]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp_receiver.url}" in message
    assert f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={otlp_receiver.traces_url}" in message


def test_grpc_port_gets_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        resolve_otlp_target("http://localhost:4317", None, {})

    assert "4318" in caplog.text


# --- resource ---------------------------------------------------------------------------


def test_default_service_name_is_livekit_agent(otlp_receiver: OtlpReceiver) -> None:
    emit_span(setup_otlp(otlp_receiver.url))

    assert otlp_receiver.wait_for_spans(1)[0].resource["service.name"] == "livekit-agent"


def test_service_name_option_wins_over_env(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")

    provider = setup_otlp(
        otlp_receiver.url, service_name="from-arg", resource_attributes={"region": "eu"}
    )
    emit_span(provider)

    resource = otlp_receiver.wait_for_spans(1)[0].resource
    assert resource["service.name"] == "from-arg"
    assert resource["region"] == "eu"


# --- bad input --------------------------------------------------------------------------


def test_missing_langfuse_public_key_is_named() -> None:
    with pytest.raises(ValueError, match="LANGFUSE_PUBLIC_KEY") as error:
        setup_langfuse("https://cloud.langfuse.com", secret_key=SECRET)

    assert "LANGFUSE_SECRET_KEY" not in str(error.value)
    assert "public_key=" in str(error.value)


def test_missing_langfuse_secret_key_is_named() -> None:
    with pytest.raises(ValueError, match="LANGFUSE_SECRET_KEY") as error:
        setup_langfuse("https://cloud.langfuse.com", public_key=PUBLIC)

    assert "LANGFUSE_PUBLIC_KEY" not in str(error.value)
    assert "secret_key=" in str(error.value)


def test_missing_langfuse_keys_are_named_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "  ")

    with pytest.raises(ValueError) as error:
        setup_langfuse()

    assert str(error.value) == (
        "Langfuse is not configured: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY "
        "(or pass public_key=..., secret_key=...)"
    )


def test_swapped_langfuse_keys_are_rejected_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="swapped") as error:
        setup_langfuse("https://cloud.langfuse.com", SECRET, PUBLIC)

    assert SECRET not in str(error.value)
    assert PUBLIC not in str(error.value)


def test_langfuse_host_without_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"host= must be a URL starting with http:// or https://"):
        setup_langfuse("cloud.langfuse.com", PUBLIC, SECRET)


def test_langfuse_env_host_without_scheme_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "localhost:3000")

    with pytest.raises(ValueError, match=r"^LANGFUSE_HOST must be a URL starting with http://"):
        setup_langfuse(public_key=PUBLIC, secret_key=SECRET)


def test_otlp_endpoint_without_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^endpoint= must be a URL starting with http://"):
        setup_otlp("localhost:4318")


def test_otlp_env_endpoint_without_scheme_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_ENDPOINT must be a URL"):
        setup_otlp()


@pytest.mark.parametrize(
    "headers",
    [
        f"Authorization Basic {HEADER_SECRET}",
        f"x-ok=1,Authorization: Basic {HEADER_SECRET}=",
        f'x-key="{HEADER_SECRET}"',
        f"x-key={HEADER_SECRET};x=y",
        f"x-key={HEADER_SECRET}%0Ax-injected=1",
    ],
)
def test_malformed_otlp_headers_env_is_rejected_without_echoing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, headers: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", headers)

    with caplog.at_level(logging.DEBUG), pytest.raises(ValueError) as error:
        setup_otlp()

    assert "OTEL_EXPORTER_OTLP_HEADERS" in str(error.value)
    assert HEADER_SECRET not in str(error.value)
    assert HEADER_SECRET not in caplog.text


def test_explicit_header_with_line_break_is_rejected() -> None:
    with pytest.raises(ValueError, match="'x-key'") as error:
        setup_otlp("http://localhost:4318", {"x-key": f"{HEADER_SECRET}\r\nx-evil: 1"})

    assert HEADER_SECRET not in str(error.value)


def test_non_positive_timeouts_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"^timeout"):
        setup_otlp("http://localhost:4318", timeout=0)
    with pytest.raises(ValueError, match=r"^shutdown_timeout"):
        setup_otlp("http://localhost:4318", shutdown_timeout=-1)


# --- secrets and side effects -----------------------------------------------------------


def test_secrets_absent_from_logs_and_reprs(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # malformed and unused by Langfuse: the SDK's own warning would quote it
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization Basic {HEADER_SECRET}")

    with caplog.at_level(logging.DEBUG):
        provider = setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)
        emit_span(provider)
        otlp_receiver.wait_for_spans(1)
        target = resolve_langfuse_target(otlp_receiver.url, PUBLIC, SECRET, {})

    token = basic(PUBLIC, SECRET).split()[1]
    for secret in (SECRET, token, HEADER_SECRET):
        assert secret not in caplog.text
        assert secret not in repr(target)
        assert secret not in repr(provider)
    assert "authorization" in repr(target)


def test_setup_leaves_os_environ_unchanged(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.traces_url)
    before = dict(os.environ)

    setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)
    setup_otlp(service_name="x")

    assert dict(os.environ) == before


# --- export failures --------------------------------------------------------------------


def test_an_export_that_raises_is_one_exporter_error_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # older exporter releases let a refused connection or a timeout escape export()
    def refused(self: OTLPSpanExporter, spans: Any) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(OTLPSpanExporter, "export", refused)
    provider = setup_otlp(refused_url(), headers={})
    with caplog.at_level(logging.DEBUG):
        emit_span(provider)

    failures = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in failures] == [OTLPSpanExporter.__module__]
    assert "ConnectionError: connection refused" in failures[0].getMessage()
    assert failures[0].exc_info is None


# --- calling twice ----------------------------------------------------------------------


def test_second_call_with_same_settings_returns_same_provider_and_exports_once(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    first = setup_otlp(otlp_receiver.url)
    second = setup_otlp(otlp_receiver.url)

    emit_span(second)
    otlp_receiver.wait_for_spans(1)
    first.force_flush()
    time.sleep(0.1)

    assert second is first
    assert len(plugin.calls) == 1
    assert len(otlp_receiver.spans) == 1


def test_second_call_with_different_settings_replaces_the_provider(
    otlp_receiver: OtlpReceiver, plugin: PluginStub, caplog: pytest.LogCaptureFixture
) -> None:
    other = OtlpReceiver().start()
    try:
        first = setup_otlp(otlp_receiver.url)
        first.get_tracer("t").start_span("before").end()
        with caplog.at_level(logging.WARNING):
            second = setup_otlp(other.url)
        emit_span(second, "after")

        assert [s.name for s in otlp_receiver.wait_for_spans(1)] == ["before"]
        assert [s.name for s in other.wait_for_spans(1)] == ["after"]
        assert [provider for provider, _ in plugin.calls] == [first, second]
        assert "previous provider is flushed and shut down" in caplog.text
    finally:
        other.stop()


# --- global provider and plugin hand-off ------------------------------------------------


def test_global_provider_untouched_by_default(otlp_receiver: OtlpReceiver) -> None:
    before = trace.get_tracer_provider()

    provider = setup_otlp(otlp_receiver.url)

    assert trace.get_tracer_provider() is before
    assert trace.get_tracer_provider() is not provider


@pytest.fixture
def global_meter_provider(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stands in for OpenTelemetry's process-global meter provider: setting the real one
    would bind every proxy meter of the test process to it for good."""
    held: list[Any] = []

    def set_meter_provider(provider: Any) -> None:
        if not held:
            held.append(provider)

    monkeypatch.setattr(metrics, "set_meter_provider", set_meter_provider)
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: held[0] if held else None)
    return held


@pytest.fixture
def global_tracer_provider_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's process-global tracer provider not yet set, for this test only."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)


@pytest.mark.usefixtures("global_tracer_provider_unset")
def test_global_provider_set_when_asked(
    otlp_receiver: OtlpReceiver, global_meter_provider: list[Any]
) -> None:
    provider = setup_otlp(otlp_receiver.url, set_global=True)

    assert trace.get_tracer_provider() is provider
    assert global_meter_provider == [bootstrap.installed_meter_provider()]


@pytest.mark.usefixtures("global_tracer_provider_unset")
def test_global_meter_provider_set_once_warns_when_taken(
    otlp_receiver: OtlpReceiver,
    global_meter_provider: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    global_meter_provider.append(object())  # someone set it before

    with caplog.at_level(logging.WARNING):
        setup_otlp(otlp_receiver.url, set_global=True, metrics=True)

    assert "a global meter provider was already set" in caplog.text


def test_global_meter_provider_untouched_by_default(
    otlp_receiver: OtlpReceiver, global_meter_provider: list[Any]
) -> None:
    setup_otlp(otlp_receiver.url)

    assert global_meter_provider == []


def test_provider_is_handed_to_the_plugin_with_instrument_options(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    plain = setup_otlp(otlp_receiver.url)
    with_options = setup_otlp(otlp_receiver.url, instrument_options={"capture_content": False})

    assert plugin.calls == [(plain, {}), (with_options, {"capture_content": False})]


# --- flush at job shutdown --------------------------------------------------------------


async def test_shutdown_callback_flushes_pending_span_within_its_bound(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only a flush sends it
    provider = setup_otlp(otlp_receiver.url)
    provider.get_tracer("t").start_span("pending").end()
    await asyncio.sleep(0.05)
    assert otlp_receiver.requests == []

    started = time.monotonic()
    await flush_on_shutdown(provider, timeout=2.0)("job_shutdown")

    assert time.monotonic() - started < 2.0
    assert [s.name for s in otlp_receiver.spans] == ["pending"]


async def test_shutdown_callback_returns_within_its_bound_when_receiver_hangs(
    otlp_receiver: OtlpReceiver,
) -> None:
    otlp_receiver.respond(delay=30.0)
    provider = setup_otlp(otlp_receiver.url, timeout=20.0)
    provider.get_tracer("t").start_span("stuck").end()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    await flush_on_shutdown(provider, timeout=0.3)("job_shutdown")
    elapsed = time.monotonic() - started
    ticking.cancel()

    assert 0.3 <= elapsed < 0.8
    assert ticks >= 10  # the event loop kept running during the flush
    assert len(otlp_receiver.wait_for_requests(1)) == 1


def fake_livekit_agents(monkeypatch: pytest.MonkeyPatch, get_job_context: Any) -> None:
    """Stand in for ``livekit.agents`` (importing the real one takes seconds)."""
    fake = types.ModuleType("livekit.agents")
    fake.get_job_context = get_job_context  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "livekit.agents", fake)


def test_setup_inside_a_job_registers_one_flush_per_job(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = FakeJobContext()
    fake_livekit_agents(monkeypatch, lambda: ctx)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only a flush sends it

    provider = setup_otlp(otlp_receiver.url, metrics=False)
    setup_otlp(otlp_receiver.url, metrics=False)  # same settings, same job: still one callback
    provider.get_tracer("t").start_span("last").end()
    (callback,) = ctx.callbacks
    asyncio.run(callback("room_deleted"))

    assert [s.name for s in otlp_receiver.spans] == ["last"]


def test_livekit_calls_the_flush_callback_with_the_shutdown_reason() -> None:
    from livekit.agents import JobContext

    callback = flush_on_shutdown(TracerProvider())
    livekit_ctx = types.SimpleNamespace(_shutdown_callbacks=[])

    JobContext.add_shutdown_callback(livekit_ctx, callback)  # type: ignore[arg-type]

    # stored as is (a callback without a parameter would be wrapped), later awaited as
    # callback(shutdown_info.reason)
    assert livekit_ctx._shutdown_callbacks == [callback]


def test_setup_outside_a_job_registers_nothing(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_job() -> None:
        raise RuntimeError("no job context found")

    fake_livekit_agents(monkeypatch, no_job)

    provider = setup_otlp(otlp_receiver.url)

    assert lifecycle.register_flush_on_shutdown(provider) is False


# --- a bad setting inside a running job -------------------------------------------------


def no_job() -> None:
    """``livekit.agents.get_job_context`` outside a job (at import or worker start)."""
    raise RuntimeError("no job context found")


@pytest.fixture
def in_job(monkeypatch: pytest.MonkeyPatch) -> FakeJobContext:
    """A running LiveKit job, as ``livekit.agents.get_job_context`` reports it."""
    ctx = FakeJobContext()
    fake_livekit_agents(monkeypatch, lambda: ctx)
    return ctx


def missing_langfuse_keys() -> TracerProvider:
    return setup_langfuse("https://cloud.langfuse.com")


def swapped_langfuse_keys() -> TracerProvider:
    return setup_langfuse("https://cloud.langfuse.com", SECRET, PUBLIC)


def langfuse_host_without_scheme() -> TracerProvider:
    return setup_langfuse("cloud.langfuse.com", PUBLIC, SECRET)


def otlp_endpoint_without_scheme() -> TracerProvider:
    return setup_otlp("localhost:4318")


def otlp_header_with_line_break() -> TracerProvider:
    return setup_otlp("http://localhost:4318", {"x-key": f"{HEADER_SECRET}\r\nx-evil: 1"})


def otlp_zero_timeout() -> TracerProvider:
    return setup_otlp("http://localhost:4318", timeout=0)


def otlp_timeout_as_text() -> TracerProvider:
    return setup_otlp("http://localhost:4318", timeout="10")  # type: ignore[arg-type]


def otlp_negative_shutdown_timeout() -> TracerProvider:
    return setup_otlp("http://localhost:4318", shutdown_timeout=-1)


def otlp_metrics_option_as_text() -> TracerProvider:
    return setup_otlp("http://localhost:4318", metrics="yes")  # type: ignore[arg-type]


# each bad setting, with a piece of the message that tells what to fix
BAD_SETTINGS = [
    pytest.param(missing_langfuse_keys, "set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"),
    pytest.param(swapped_langfuse_keys, "are the two keys swapped?"),
    pytest.param(langfuse_host_without_scheme, "host= must be a URL starting with http://"),
    pytest.param(otlp_endpoint_without_scheme, "endpoint= must be a URL starting with http://"),
    pytest.param(otlp_header_with_line_break, "header 'x-key' contains a line break"),
    pytest.param(otlp_zero_timeout, "timeout must be a positive number of seconds"),
    pytest.param(otlp_timeout_as_text, "timeout must be a positive number of seconds"),
    pytest.param(otlp_negative_shutdown_timeout, "shutdown_timeout must be a positive number"),
    pytest.param(otlp_metrics_option_as_text, "metrics must be True, False or None"),
]


@pytest.mark.parametrize(("bad_setup", "fix"), BAD_SETTINGS)
def test_bad_setting_at_import_or_worker_start_raises(
    monkeypatch: pytest.MonkeyPatch, bad_setup: Any, fix: str
) -> None:
    fake_livekit_agents(monkeypatch, no_job)

    with pytest.raises(ValueError, match=re.escape(fix)):
        bad_setup()


@pytest.mark.parametrize(("bad_setup", "fix"), BAD_SETTINGS)
def test_bad_setting_inside_a_job_is_one_error_that_says_what_to_fix(
    in_job: FakeJobContext, caplog: pytest.LogCaptureFixture, bad_setup: Any, fix: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        bad_setup()

    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.levelno for record in problems] == [logging.ERROR]
    assert problems[0].name.startswith("livekit_otel")
    assert fix in problems[0].getMessage()
    assert "without tracing" in problems[0].getMessage()


def test_bad_langfuse_keys_inside_a_job_are_not_logged(
    in_job: FakeJobContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        setup_langfuse("https://cloud.langfuse.com", SECRET, PUBLIC)

    assert "swapped" in caplog.text
    assert SECRET not in caplog.text
    assert PUBLIC not in caplog.text


def test_malformed_headers_env_inside_a_job_is_not_logged(
    in_job: FakeJobContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization Basic {HEADER_SECRET}")

    with caplog.at_level(logging.DEBUG):
        setup_otlp()

    assert "OTEL_EXPORTER_OTLP_HEADERS" in caplog.text
    assert HEADER_SECRET not in caplog.text


def test_failed_setup_inside_a_job_returns_a_provider_that_records_nothing(
    in_job: FakeJobContext,
) -> None:
    provider = setup_langfuse("https://cloud.langfuse.com")

    span = provider.get_tracer("app").start_span("user_code")
    span.end()

    assert isinstance(provider, TracerProvider)
    assert span.is_recording() is False
    assert provider.force_flush() is True


def test_failed_setup_inside_a_job_installs_nothing(
    in_job: FakeJobContext, plugin: PluginStub
) -> None:
    setup_otlp("localhost:4318")

    assert plugin.calls == []
    assert bootstrap._installed is None
    assert in_job.callbacks == []


def test_failed_setup_inside_a_job_keeps_the_provider_set_up_before(
    in_job: FakeJobContext, plugin: PluginStub, otlp_receiver: OtlpReceiver
) -> None:
    working = setup_otlp(otlp_receiver.url)

    setup_otlp(otlp_receiver.url, timeout=-5)

    assert [provider for provider, _ in plugin.calls] == [working]
    assert bootstrap._installed is not None
    assert bootstrap._installed.provider is working


def test_unexpected_failure_inside_a_job_logs_its_type_not_its_message(
    in_job: FakeJobContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"exporter broke on {HEADER_SECRET}")

    monkeypatch.setattr(bootstrap, "build_provider", broken)

    with caplog.at_level(logging.DEBUG):
        provider = setup_otlp("http://localhost:4318")

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "unexpected RuntimeError" in record.getMessage()
    assert HEADER_SECRET not in caplog.text
    assert provider.get_tracer("app").start_span("x").is_recording() is False


def test_unexpected_failure_outside_a_job_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter broke")

    fake_livekit_agents(monkeypatch, no_job)
    monkeypatch.setattr(bootstrap, "build_provider", broken)

    with pytest.raises(RuntimeError, match="exporter broke"):
        setup_otlp("http://localhost:4318")


# --- OTLP metrics -----------------------------------------------------------------------


def count_one(
    meter_provider: MeterProvider | None, name: str = "unit.calls", flush: bool = True
) -> None:
    """Add 1 to a counter on ``meter_provider`` and flush it (``flush=False`` for a
    Prometheus reader: its flush queues one more copy for the next scrape)."""
    assert meter_provider is not None
    meter_provider.get_meter("livekit-otel-test").create_counter(name, unit="{call}").add(1)
    if flush:
        meter_provider.force_flush()


def test_otlp_metrics_reach_v1_metrics_of_the_same_backend_with_the_same_headers(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    provider = setup_otlp(otlp_receiver.url, {"x-api-key": "k1"}, service_name="agent-x")
    meter_provider = bootstrap.installed_meter_provider()

    count_one(meter_provider)

    (metric,) = otlp_receiver.wait_for_metrics("unit.calls")
    assert metric.path == "/v1/metrics"
    assert metric.headers["x-api-key"] == "k1"
    assert metric.headers["content-encoding"] == "gzip"
    assert metric.resource["service.name"] == "agent-x"
    assert (metric.kind, metric.temporality, metric.monotonic) == ("sum", "CUMULATIVE", True)
    assert [point.value for point in metric.points] == [1]
    assert plugin.meters == [meter_provider]
    assert plugin.calls == [(provider, {})]


@pytest.mark.parametrize("path", ["", "/", "/v1/traces", "/v1/traces/"])
def test_metrics_url_is_built_from_the_endpoint_argument(
    otlp_receiver: OtlpReceiver, path: str
) -> None:
    setup_otlp(otlp_receiver.url + path)

    count_one(bootstrap.installed_meter_provider())

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
        count_one(bootstrap.installed_meter_provider())

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
    count_one(bootstrap.installed_meter_provider())

    headers = otlp_receiver.wait_for_metrics("unit.calls")[0].headers
    assert headers["x-honeycomb-team"] == "key"
    assert HEADER_SECRET not in repr(headers)


def test_empty_headers_send_no_env_headers_with_metrics(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", f"x-env-metrics={HEADER_SECRET}")

    setup_otlp(otlp_receiver.url, {})
    count_one(bootstrap.installed_meter_provider())

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

    assert (bootstrap.installed_meter_provider() is not None) is enabled
    assert len(plugin.meters) == int(enabled)


@pytest.mark.parametrize(("exporters", "option"), [("otlp", False), ("none", True)])
def test_metrics_option_wins_over_otel_metrics_exporter(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, exporters: str, option: bool
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", exporters)

    setup_otlp(otlp_receiver.url, metrics=option)

    assert (bootstrap.installed_meter_provider() is not None) is option


def test_metrics_off_leaves_a_bad_metrics_variable_unread(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")

    emit_span(setup_otlp(otlp_receiver.url))

    assert otlp_receiver.wait_for_spans(1)


def test_langfuse_sends_no_metrics(otlp_receiver: OtlpReceiver, plugin: PluginStub) -> None:
    setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)

    assert bootstrap.installed_meter_provider() is None
    assert plugin.meters == []


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
    first = bootstrap.installed_meter_provider()
    setup_otlp(otlp_receiver.url)
    assert bootstrap.installed_meter_provider() is first

    setup_otlp(otlp_receiver.url, service_name="other")
    second = bootstrap.installed_meter_provider()

    assert first is not None and second is not None and second is not first
    assert plugin.meters == [first, second]
    wait_until(lambda: first._shutdown)  # retired in the background


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_setup_in_a_job_flushes_spans_and_metrics_one_callback_each(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = FakeJobContext()
    fake_livekit_agents(monkeypatch, lambda: ctx)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")  # only a flush sends them

    provider = setup_otlp(otlp_receiver.url)
    setup_otlp(otlp_receiver.url)
    provider.get_tracer("t").start_span("last").end()
    meter = bootstrap.installed_meter_provider()
    assert meter is not None
    meter.get_meter("t").create_counter("unit.calls").add(2)
    assert len(ctx.callbacks) == 2

    async def shutdown() -> None:
        await asyncio.gather(*(callback("room_deleted") for callback in ctx.callbacks))

    asyncio.run(shutdown())

    assert [s.name for s in otlp_receiver.spans] == ["last"]
    assert [p.value for p in otlp_receiver.latest("unit.calls").points] == [2]


def test_setup_at_import_is_flushed_in_each_job_within_its_own_bound(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_livekit_agents(monkeypatch, no_job)
    provider = setup_otlp(otlp_receiver.url, timeout=20.0, shutdown_timeout=0.4)
    otlp_receiver.respond(delay=30.0)
    provider.get_tracer("t").start_span("pending").end()
    ctx = FakeJobContext()
    fake_livekit_agents(monkeypatch, lambda: ctx)

    # what the instrumentor does as a session starts, with the default bound
    assert lifecycle.register_flush_on_shutdown(provider) is True
    assert len(ctx.callbacks) == 2  # the spans and the metrics of the setup

    async def shutdown() -> float:
        started = time.monotonic()
        await asyncio.gather(*(callback("room_deleted") for callback in ctx.callbacks))
        return time.monotonic() - started

    assert asyncio.run(shutdown()) < 1.0  # the setup's 0.4 s, not the default 3 s


async def test_metrics_flush_returns_within_its_bound_when_the_receiver_hangs(
    otlp_receiver: OtlpReceiver,
) -> None:
    otlp_receiver.respond(delay=30.0)
    setup_otlp(otlp_receiver.url, timeout=20.0)
    meter = bootstrap.installed_meter_provider()
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
        count_one(bootstrap.installed_meter_provider())

    failures = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in failures] == [OTLPMetricExporter.__module__]
    assert "ConnectionError: connection refused" in failures[0].getMessage()
    assert failures[0].exc_info is None


# --- Prometheus endpoint ----------------------------------------------------------------


def scrape(port: int) -> str:
    """The text ``/metrics`` serves on 127.0.0.1:``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str) -> float | None:
    """The value of the one sample ``name`` (any labels) in an exposition, or ``None``."""
    found = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    assert len(found) <= 1, found
    return float(found[0]) if found else None


def served_port() -> int:
    assert bootstrap._served is not None
    return bootstrap._served.port


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def exporter_installed() -> None:
    pytest.importorskip("opentelemetry.exporter.prometheus")


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_serves_the_metrics_and_hands_the_provider_to_the_plugin(
    plugin: PluginStub,
) -> None:
    provider = setup_prometheus(port=0, service_name="agent-p")
    count_one(provider, flush=False)

    text = scrape(served_port())

    assert sample(text, "unit_calls_total") == 1.0
    assert 'service_name="agent-p"' in text  # target_info
    assert plugin.meters == [provider]
    assert bootstrap.installed_meter_provider() is provider


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_same_settings_twice_is_a_no_op(plugin: PluginStub) -> None:
    first = setup_prometheus(port=0)
    port = served_port()

    assert setup_prometheus(port=0) is first
    assert served_port() == port
    assert plugin.meters == [first]


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_other_settings_replace_the_endpoint(
    plugin: PluginStub, caplog: pytest.LogCaptureFixture
) -> None:
    first = setup_prometheus(port=0)
    old_port = served_port()
    with caplog.at_level(logging.WARNING):
        second = setup_prometheus(port=0, service_name="other")
    count_one(second, flush=False)

    assert second is not first
    assert sample(scrape(served_port()), "unit_calls_total") == 1.0
    assert "is replaced" in caplog.text
    wait_until(lambda: first._shutdown)
    with pytest.raises(OSError):
        scrape(old_port)


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_reads_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "0")

    count_one(setup_prometheus(), flush=False)

    assert sample(scrape(served_port()), "unit_calls_total") == 1.0


def test_prometheus_default_address_is_loopback_9464() -> None:
    assert resolve_prometheus_address(None, None, {}) == ("127.0.0.1", 9464)
    assert resolve_prometheus_address("0.0.0.0", 9100, {}) == ("0.0.0.0", 9100)
    assert resolve_prometheus_address("[::]", None, {}) == ("::", 9464)


@pytest.mark.parametrize("port", [-1, 65536, 70000, True, 9464.0, "9464"])
def test_prometheus_port_out_of_range_is_rejected(port: Any) -> None:
    with pytest.raises(ValueError, match=r"^port= must be a port number from 1 to 65535"):
        setup_prometheus(port=port)


def test_prometheus_port_variable_that_is_not_a_number_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "ninety")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_PROMETHEUS_PORT must be a port number"):
        setup_prometheus()


@pytest.mark.parametrize("host", ["http://0.0.0.0", "0.0.0.0:9464/metrics", " "])
def test_prometheus_host_that_is_a_url_is_rejected(host: str) -> None:
    with pytest.raises(ValueError, match=r"^host= must be a host name or IP address"):
        setup_prometheus(host=host)


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_port_in_use_outside_a_job_raises_what_to_do(plugin: PluginStub) -> None:
    with port_in_use() as port, pytest.raises(OSError) as error:
        setup_prometheus(port=port)

    assert error.value.errno == errno.EADDRINUSE
    assert f"port {port} on 127.0.0.1 is already in use" in str(error.value)
    assert "Pass another port=" in str(error.value)
    assert plugin.meters == []
    assert bootstrap._served is None


@pytest.fixture
def job_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process is one LiveKit started for a job (as LiveKit names them)."""
    monkeypatch.setattr(multiprocessing.current_process(), "name", "job_proc")


@pytest.mark.usefixtures("exporter_installed", "job_process")
def test_prometheus_port_in_use_inside_a_job_is_one_error_and_no_crash(
    in_job: FakeJobContext, plugin: PluginStub, caplog: pytest.LogCaptureFixture
) -> None:
    with port_in_use() as port, caplog.at_level(logging.DEBUG):
        provider = setup_prometheus(port=port)
    count_one(provider, flush=False)  # records nothing, raises nothing

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert "already in use" in record.getMessage()
    assert "job_executor_type=JobExecutorType.THREAD" in record.getMessage()
    assert isinstance(provider, MeterProvider)
    assert plugin.meters == []


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_port_in_use_in_a_job_run_in_a_thread_is_one_error(
    in_job: FakeJobContext, caplog: pytest.LogCaptureFixture
) -> None:
    with port_in_use() as port, caplog.at_level(logging.DEBUG):
        setup_prometheus(port=port)

    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert "already in use" in record.getMessage()
    assert "JobExecutorType" not in record.getMessage()  # it already runs in the worker


@pytest.mark.usefixtures("exporter_installed")
@pytest.mark.parametrize(("process", "level"), [("job_proc", "ERROR"), ("Process-2", "INFO")])
def test_prometheus_port_in_use_at_import_in_a_child_process_does_not_raise(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    plugin: PluginStub,
    process: str,
    level: str,
) -> None:
    # LiveKit's job (and inference) processes import the agent's main module again, outside
    # any job context, while the worker's main process holds the port
    fake_livekit_agents(monkeypatch, no_job)
    monkeypatch.setattr(multiprocessing.current_process(), "name", process)

    with port_in_use() as port, caplog.at_level(logging.DEBUG, logger="livekit_otel"):
        setup_prometheus(port=port)

    (record,) = [r for r in caplog.records if "setup_prometheus" in r.getMessage()]
    assert record.levelname == level
    assert plugin.meters == []


@pytest.mark.usefixtures("exporter_installed", "job_process")
def test_prometheus_from_a_job_process_warns_that_the_endpoint_ends_with_the_job(
    in_job: FakeJobContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        setup_prometheus(port=0)

    assert "the endpoint ends with the job" in caplog.text


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_from_a_job_run_in_a_thread_serves_without_a_warning(
    in_job: FakeJobContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        count_one(setup_prometheus(port=0), flush=False)

    assert caplog.text == ""
    assert sample(scrape(served_port()), "unit_calls_total") == 1.0


def test_prometheus_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)

    with pytest.raises(ImportError, match=re.escape("pip install 'livekit-otel[prometheus]'")):
        setup_prometheus(port=0)


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_takes_the_metrics_from_setup_otlp_in_either_order(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    setup_otlp(otlp_receiver.url)
    otlp_metrics = bootstrap.installed_meter_provider()
    served = setup_prometheus(port=0)
    assert otlp_metrics is not None and otlp_metrics is not served
    wait_until(lambda: otlp_metrics._shutdown)

    setup_otlp(otlp_receiver.url, service_name="again")

    assert bootstrap.installed_meter_provider() is served
    assert plugin.meters == [otlp_metrics, served, served]
    assert bootstrap._installed is not None and bootstrap._installed.meter_provider is None


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_set_global_sets_the_global_meter_provider(
    global_meter_provider: list[Any],
) -> None:
    provider = setup_prometheus(port=0, set_global=True)

    assert global_meter_provider == [provider]
