"""setup_otlp against a real OTLP/HTTP receiver on 127.0.0.1: endpoints, headers, resource,
bad input, secrets, export failures, repeated calls, global providers."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from livekit_otel.setup import installed as setup_state
from livekit_otel.setup.endpoints import (
    resolve_langfuse_target,
    resolve_otlp_target,
)
from livekit_otel.setup.langfuse import setup_langfuse
from livekit_otel.setup.otlp import setup_otlp
from support.setup_fixtures import (
    HEADER_SECRET,
    PUBLIC,
    SECRET,
    PluginStub,
    basic,
    clean_setup,
    emit_span,
)


@pytest.fixture(autouse=True)
def plugin(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> Iterator[PluginStub]:
    """A clean setup state and a stub instrumentor for every test."""
    yield from clean_setup(monkeypatch, otlp_receiver)


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


def test_global_provider_untouched_by_default(otlp_receiver: OtlpReceiver) -> None:
    before = trace.get_tracer_provider()

    provider = setup_otlp(otlp_receiver.url)

    assert trace.get_tracer_provider() is before
    assert trace.get_tracer_provider() is not provider


@pytest.mark.usefixtures("global_tracer_provider_unset")
def test_global_provider_set_when_asked(
    otlp_receiver: OtlpReceiver, global_meter_provider: list[Any]
) -> None:
    provider = setup_otlp(otlp_receiver.url, set_global=True)

    assert trace.get_tracer_provider() is provider
    assert global_meter_provider == [setup_state.installed_meter_provider()]


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

    # a generic OTLP backend: the GenAI keys by default (the receiver is no Phoenix)
    assert plugin.calls == [
        (plain, {"conventions": "genai"}),
        (with_options, {"capture_content": False, "conventions": "genai"}),
    ]


# --- arguments of the wrong type, paths no receiver serves, where spans go ------------------


def test_headers_given_as_text_are_read_like_the_headers_variable(
    otlp_receiver: OtlpReceiver,
) -> None:
    emit_span(setup_otlp(otlp_receiver.url, "x-api-key=k1,x-team=voice"))  # type: ignore[arg-type]

    (span,) = otlp_receiver.wait_for_spans(1)
    assert (span.headers["x-api-key"], span.headers["x-team"]) == ("k1", "voice")


@pytest.mark.parametrize("path", ["/v1/trace", "/v1/span", "/v1/spans", "/v1/traces/v1/traces"])
def test_a_traces_variable_with_a_path_no_receiver_serves_is_named(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318" + path)

    with pytest.raises(ValueError, match=rf"^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ends with {path}"):
        setup_otlp()


def test_a_metrics_variable_ending_in_v1_metric_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://collector:4318/v1/metric")

    with pytest.raises(ValueError, match=r"^OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ends with /v1/"):
        setup_otlp()


def test_with_no_endpoint_anywhere_one_info_line_says_where_spans_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="livekit_otel"):
        setup_otlp(metrics=False)

    (line,) = [r.getMessage() for r in caplog.records if "no endpoint given" in r.getMessage()]
    assert "http://localhost:4318/v1/traces" in line


def test_an_endpoint_given_logs_no_default_line(
    otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="livekit_otel"):
        setup_otlp(otlp_receiver.url)

    assert "no endpoint given" not in caplog.text


# -- the conventions a backend reads, by default ----------------------------------------
@pytest.fixture(autouse=True)
def no_conventions_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a conventions nor a Phoenix variable applies unless a test sets it."""
    monkeypatch.delenv("LIVEKIT_OTEL_CONVENTIONS", raising=False)
    monkeypatch.delenv("PHOENIX_COLLECTOR_ENDPOINT", raising=False)


@pytest.mark.parametrize(
    ("endpoint", "resource", "expected"),
    [
        ("http://127.0.0.1:6006/v1/traces", None, "openinference"),  # Phoenix's port
        ("https://app.phoenix.arize.com/v1/traces", None, "openinference"),
        ("http://phoenix:4318", None, "openinference"),  # a compose service named phoenix
        ("http://127.0.0.1:4318", {"openinference.project.name": "agent"}, "openinference"),
        ("http://127.0.0.1:4318", None, "genai"),
        ("https://api.honeycomb.io", None, "genai"),
    ],
)
def test_setup_otlp_writes_the_keys_its_backend_reads(
    plugin: PluginStub, endpoint: str, resource: dict[str, str] | None, expected: str
) -> None:
    setup_otlp(endpoint, headers={}, resource_attributes=resource, metrics=False)

    ((_, options),) = plugin.calls
    assert options["conventions"] == expected


def test_a_phoenix_collector_endpoint_variable_marks_the_endpoint_as_phoenix(
    plugin: PluginStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", "http://traces.internal:4318")
    setup_otlp(metrics=False, endpoint="http://traces.internal:4318")

    assert plugin.calls[0][1]["conventions"] == "openinference"


def test_the_conventions_option_wins_over_the_backends_default(plugin: PluginStub) -> None:
    setup_otlp(
        "http://127.0.0.1:6006/v1/traces",
        metrics=False,
        instrument_options={"conventions": "genai,langfuse"},
    )

    assert plugin.calls[0][1]["conventions"] == "genai,langfuse"


def test_the_conventions_variable_wins_over_the_backends_default(
    plugin: PluginStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEKIT_OTEL_CONVENTIONS", "all")
    setup_otlp("http://127.0.0.1:6006/v1/traces", metrics=False)

    assert "conventions" not in plugin.calls[0][1]  # the instrumentor reads the variable
