"""Shared by the setup tests: a clean setup state, a stub instrumentor, a fake LiveKit job.

The fixtures ``in_job``, ``global_meter_provider`` and ``global_tracer_provider_unset`` are
registered in ``conftest.py``."""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

from livekit_otel.recording import registry as lifecycle
from livekit_otel.setup import installed as setup_state

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


def clean_setup(
    monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver
) -> Iterator[PluginStub]:
    """Clean env and setup state, a stub plugin; afterwards shut down what was built.

    Each setup test module makes this its autouse ``plugin`` fixture."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    monkeypatch.setattr(setup_state, "_served", None)
    monkeypatch.setattr(setup_state, "_handed_meter", None)
    monkeypatch.setattr(setup_state, "_plugin_instrumented", lambda: False)
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
    if setup_state._served is not None:
        setup_state._served.close()
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


def fake_livekit_agents(monkeypatch: pytest.MonkeyPatch, get_job_context: Any) -> None:
    """Stand in for ``livekit.agents`` (importing the real one takes seconds)."""
    fake = types.ModuleType("livekit.agents")
    fake.get_job_context = get_job_context  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "livekit.agents", fake)


def no_job() -> None:
    """``livekit.agents.get_job_context`` outside a job (at import or worker start)."""
    raise RuntimeError("no job context found")


@pytest.fixture
def in_job(monkeypatch: pytest.MonkeyPatch) -> FakeJobContext:
    """A running LiveKit job, as ``livekit.agents.get_job_context`` reports it."""
    ctx = FakeJobContext()
    fake_livekit_agents(monkeypatch, lambda: ctx)
    return ctx


def count_one(
    meter_provider: MeterProvider | None, name: str = "unit.calls", flush: bool = True
) -> None:
    """Add 1 to a counter on ``meter_provider`` and flush it (``flush=False`` for a
    Prometheus reader: its flush queues one more copy for the next scrape)."""
    assert meter_provider is not None
    meter_provider.get_meter("livekit-otel-test").create_counter(name, unit="{call}").add(1)
    if flush:
        meter_provider.force_flush()


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
