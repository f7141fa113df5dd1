"""Setup inside a LiveKit job: the bounded flush at job shutdown, and a bad setting that never
ends the call."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel.recording import registry as lifecycle
from livekit_otel.recording.registry import flush_on_shutdown
from livekit_otel.setup import installed as setup_state
from livekit_otel.setup.langfuse import setup_langfuse
from livekit_otel.setup.otlp import setup_otlp
from support.setup_fixtures import (
    HEADER_SECRET,
    PUBLIC,
    SECRET,
    FakeJobContext,
    PluginStub,
    clean_setup,
    fake_livekit_agents,
    no_job,
)


@pytest.fixture(autouse=True)
def plugin(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> Iterator[PluginStub]:
    """A clean setup state and a stub instrumentor for every test."""
    yield from clean_setup(monkeypatch, otlp_receiver)


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


def otlp_endpoint_as_a_number() -> TracerProvider:
    return setup_otlp(4318)  # type: ignore[arg-type]


def otlp_headers_as_a_number() -> TracerProvider:
    return setup_otlp("http://localhost:4318", 5)  # type: ignore[arg-type]


def otlp_endpoint_ending_in_v1_trace() -> TracerProvider:
    return setup_otlp("http://localhost:4318/v1/trace")


def otlp_wrong_instrument_option() -> TracerProvider:
    return setup_otlp("http://localhost:4318", instrument_options={"capture_content": "maybe"})


def otlp_instrument_options_as_text() -> TracerProvider:
    return setup_otlp("http://localhost:4318", instrument_options="capture_content=false")  # type: ignore[arg-type]


def otlp_tracer_provider_in_instrument_options() -> TracerProvider:
    return setup_otlp("http://localhost:4318", instrument_options={"tracer_provider": object()})


def langfuse_key_as_a_number() -> TracerProvider:
    return setup_langfuse("https://cloud.langfuse.com", 1234, SECRET)  # type: ignore[arg-type]


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
    pytest.param(otlp_endpoint_as_a_number, "endpoint= must be a string, a URL such as"),
    pytest.param(otlp_headers_as_a_number, "headers= must be a dict of header names to values"),
    pytest.param(otlp_endpoint_ending_in_v1_trace, "endpoint= ends with /v1/trace, a path no"),
    pytest.param(
        otlp_wrong_instrument_option, "instrument_options: capture_content must be true or false"
    ),
    pytest.param(otlp_instrument_options_as_text, "instrument_options must be a dict"),
    pytest.param(langfuse_key_as_a_number, "public_key= must be a string"),
    pytest.param(
        otlp_tracer_provider_in_instrument_options, "instrument_options cannot hold tracer_provider"
    ),
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
    assert setup_state._installed is None
    assert in_job.callbacks == []


def test_failed_setup_inside_a_job_keeps_the_provider_set_up_before(
    in_job: FakeJobContext, plugin: PluginStub, otlp_receiver: OtlpReceiver
) -> None:
    working = setup_otlp(otlp_receiver.url)

    setup_otlp(otlp_receiver.url, timeout=-5)

    assert [provider for provider, _ in plugin.calls] == [working]
    assert setup_state._installed is not None
    assert setup_state._installed.provider is working


def test_unexpected_failure_inside_a_job_logs_its_type_not_its_message(
    in_job: FakeJobContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"exporter broke on {HEADER_SECRET}")

    monkeypatch.setattr(setup_state, "build_provider", broken)

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
    monkeypatch.setattr(setup_state, "build_provider", broken)

    with pytest.raises(RuntimeError, match="exporter broke"):
        setup_otlp("http://localhost:4318")


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
    meter = setup_state.installed_meter_provider()
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
