"""setup_prometheus: a real endpoint scraped over HTTP, its settings, a port in use, job
processes, the missing extra."""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import re
import socket
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import opentelemetry.sdk.metrics as sdk_metrics
import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver
from opentelemetry.sdk.metrics import MeterProvider

from livekit_otel.setup import installed as setup_state
from livekit_otel.setup.endpoints import (
    resolve_prometheus_address,
)
from livekit_otel.setup.otlp import setup_otlp
from livekit_otel.setup.prometheus import setup_prometheus
from support.setup_fixtures import (
    FakeJobContext,
    PluginStub,
    clean_setup,
    count_one,
    fake_livekit_agents,
    no_job,
    wait_until,
)


@pytest.fixture(autouse=True)
def plugin(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> Iterator[PluginStub]:
    """A clean setup state and a stub instrumentor for every test."""
    yield from clean_setup(monkeypatch, otlp_receiver)


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
    assert setup_state._served is not None
    return setup_state._served.port


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
    assert setup_state.installed_meter_provider() is provider


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

    assert not type(error.value).__name__.startswith("_")  # no private class name for users
    assert error.value.errno == errno.EADDRINUSE
    assert f"port {port} on 127.0.0.1 is already in use" in str(error.value)
    assert "Pass another port=" in str(error.value)
    assert plugin.meters == []
    assert setup_state._served is None


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

    with pytest.raises(ImportError, match=re.escape("pip install -e '.[prometheus]'")):
        setup_prometheus(port=0)


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_takes_the_metrics_from_setup_otlp_in_either_order(
    otlp_receiver: OtlpReceiver, plugin: PluginStub
) -> None:
    setup_otlp(otlp_receiver.url)
    otlp_metrics = setup_state.installed_meter_provider()
    served = setup_prometheus(port=0)
    assert otlp_metrics is not None and otlp_metrics is not served
    wait_until(lambda: otlp_metrics._shutdown)

    setup_otlp(otlp_receiver.url, service_name="again")

    assert setup_state.installed_meter_provider() is served
    assert plugin.meters == [otlp_metrics, served, served]
    assert setup_state._installed is not None and setup_state._installed.meter_provider is None


@pytest.mark.usefixtures("exporter_installed")
def test_prometheus_set_global_sets_the_global_meter_provider(
    global_meter_provider: list[Any],
) -> None:
    provider = setup_prometheus(port=0, set_global=True)

    assert global_meter_provider == [provider]


@pytest.mark.usefixtures("exporter_installed")
@pytest.mark.skipif(
    not hasattr(sdk_metrics, "AlwaysOffExemplarFilter"), reason="SDK without exemplars"
)
def test_prometheus_meter_provider_samples_no_exemplars() -> None:
    provider = setup_prometheus(port=0)

    exemplar_filter = provider._sdk_config.exemplar_filter
    assert isinstance(exemplar_filter, sdk_metrics.AlwaysOffExemplarFilter)
