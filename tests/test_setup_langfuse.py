"""setup_langfuse against a real OTLP/HTTP receiver on 127.0.0.1: path, Basic auth, keys and
host, bad input, no metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url

from livekit_otel import config
from livekit_otel.setup import installed as setup_state
from livekit_otel.setup.endpoints import (
    resolve_langfuse_target,
)
from livekit_otel.setup.langfuse import setup_langfuse
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


def test_langfuse_sends_no_metrics(otlp_receiver: OtlpReceiver, plugin: PluginStub) -> None:
    setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)

    assert setup_state.installed_meter_provider() is None
    assert plugin.meters == []


# --- typos and defaults -------------------------------------------------------------------


@pytest.fixture
def no_warning_given_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_warned_environment", set())


@pytest.mark.usefixtures("no_warning_given_yet")
def test_a_misspelt_langfuse_variable_is_one_warning_naming_the_right_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LANGFUSE_HOTS", "https://langfuse.example")

    with caplog.at_level(logging.INFO, logger="livekit_otel"):
        setup_langfuse(None, PUBLIC, SECRET)

    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "LANGFUSE_HOTS" in warning and "did you mean LANGFUSE_HOST?" in warning
    (info,) = [r.getMessage() for r in caplog.records if "no Langfuse host given" in r.getMessage()]
    assert "https://cloud.langfuse.com" in info


@pytest.mark.usefixtures("no_warning_given_yet")
def test_langfuse_sdk_variables_and_unrelated_ones_give_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, otlp_receiver: OtlpReceiver
) -> None:
    monkeypatch.setenv("LANGFUSE_DEBUG", "true")
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "0.5")
    monkeypatch.setenv("LANGFUSE_MY_TEAM_SETTING", "x")

    with caplog.at_level(logging.INFO, logger="livekit_otel"):
        setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "no Langfuse host given" not in caplog.text


def test_a_langfuse_host_with_a_misspelt_traces_path_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^host= ends with /v1/trace"):
        setup_langfuse("https://cloud.langfuse.com/api/public/otel/v1/trace", PUBLIC, SECRET)


def test_setup_langfuse_writes_the_langfuse_keys_by_default(
    otlp_receiver: OtlpReceiver, plugin: PluginStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIVEKIT_OTEL_CONVENTIONS", raising=False)
    setup_langfuse(otlp_receiver.url, PUBLIC, SECRET)

    ((_, options),) = plugin.calls
    assert options == {"conventions": "langfuse"}
