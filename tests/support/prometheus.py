"""A real Prometheus server for metrics tests, started by the test on a free loopback port.

`PrometheusServer` runs Debian's `prometheus` binary (2.42 on Debian 12, installed by
`scripts/install_prometheus.sh`) with a throw-away configuration and TSDB directory:

- `global.scrape_interval` is short (1 s by default), so a test waits a second or two, not a
  minute, for its samples;
- one scrape job, `livekit-otel`, whose static targets are the `host:port` addresses the
  test gives (typically the endpoint of OpenTelemetry's Prometheus exporter, served by
  `prometheus_client.start_http_server` on another free loopback port);
- `--web.listen-address=127.0.0.1:<free port>`, so nothing listens beyond loopback and
  nothing clashes with a system Prometheus on 9090.

The class does not depend on pytest: use it as a context manager or call `start()` and
`stop()`. `prometheus_fixture()` builds a pytest fixture around it (see its docstring).

When the binary is missing the fixture skips the test with the reason, except in CI
(`CI=true`), where a missing binary is a failure: CI must install it.

Only the standard library is used for HTTP (urllib), so the helper adds no dependency.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_prometheus.sh"
BINARY_ENV = "LIVEKIT_OTEL_PROMETHEUS_BIN"
"""Path of the `prometheus` binary to run, when it is not the one on PATH."""

JOB_NAME = "livekit-otel"
DEFAULT_SCRAPE_INTERVAL = "1s"
START_TIMEOUT_S = 30.0
"""Time allowed for `/-/ready`. Prometheus 2.42 is ready in well under a second here."""
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.2
LOG_TAIL_LINES = 40

Sample = tuple[dict[str, str], float]
"""One element of an instant query's answer: the series' labels and its value."""


class PrometheusError(RuntimeError):
    """Prometheus could not be started, or answered a query with an error."""


def _free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def prometheus_binary() -> str | None:
    """Return the path of the `prometheus` binary ($LIVEKIT_OTEL_PROMETHEUS_BIN, else PATH)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("prometheus")


def in_ci() -> bool:
    """True when running in CI (the CI runner sets CI=true)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def _config_text(targets: Sequence[str], scrape_interval: str) -> str:
    """The server's configuration. JSON is valid YAML, so no YAML library is needed."""
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [
            {
                "job_name": JOB_NAME,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def _parse_value(value: str) -> float:
    """Parse a sample value as Prometheus writes it ("1.5", "NaN", "+Inf", "-Inf")."""
    return float(value)


class PrometheusServer:
    """A `prometheus` process scraping the given targets, and a small client for its API.

    `targets` are `host:port` strings (no scheme) served at `/metrics`. All files (config,
    TSDB, log) live in a temporary directory that `stop()` removes.
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
        binary: str | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        if not targets:
            raise ValueError("PrometheusServer needs at least one scrape target")
        for target in targets:
            if "://" in target or "/" in target:
                raise ValueError(f"scrape target must be host:port, not a URL: {target!r}")
        self.scrape_targets = list(targets)
        self.scrape_interval = scrape_interval
        self.binary = binary
        self.host = host
        self.start_timeout = start_timeout
        self.port = 0
        self.base_url = ""
        self.root_dir: Path | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Process id of the server, None before `start()`."""
        return self.process.pid if self.process is not None else None

    def start(self) -> PrometheusServer:
        """Start the server and wait for `/-/ready`; return self.

        Retries on a fresh port when the chosen one was taken in the meantime. Raises
        `PrometheusError` with the tail of the server log when it cannot start; the
        temporary directory is removed in that case.
        """
        if self.process is not None:
            raise PrometheusError("PrometheusServer.start() called twice")
        binary = self.binary or prometheus_binary()
        if binary is None:
            raise PrometheusError(
                f"the prometheus binary is not installed (run: bash {INSTALL_SCRIPT})"
            )
        self.root_dir = Path(tempfile.mkdtemp(prefix="livekit-otel-prometheus-"))
        config_path = self.root_dir / "prometheus.yml"
        config_path.write_text(_config_text(self.scrape_targets, self.scrape_interval), "utf-8")
        reason = ""
        try:
            for attempt in range(3):
                reason = self._start_once(binary, config_path, attempt)
                if not reason:
                    return self
                if "address already in use" not in self.log_tail().lower():
                    break
            raise PrometheusError(f"{reason}; last lines of {self.log_path}:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _start_once(self, binary: str, config_path: Path, attempt: int) -> str:
        """Start one process on a fresh port; return "" when ready, else the reason."""
        assert self.root_dir is not None
        self.port = _free_port(self.host)
        self.base_url = f"http://{self.host}:{self.port}"
        data_dir = self.root_dir / f"data-{attempt}"
        data_dir.mkdir()
        self.log_path = self.root_dir / f"prometheus-{attempt}.log"
        command = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=info",
        ]
        started = time.monotonic()
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                command,
                cwd=self.root_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                return f"prometheus exited with code {code} at start"
            if self._ready():
                self.startup_seconds = time.monotonic() - started
                return ""
            time.sleep(POLL_INTERVAL_S)
        self._stop_process()
        return f"prometheus did not answer {self.base_url}/-/ready within {self.start_timeout:.0f}s"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2.0) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _stop_process(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process (by its pid), then SIGKILL after `timeout` seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server and remove its temporary directory. Safe to call twice."""
        try:
            self._stop_process(timeout)
        finally:
            if self.root_dir is not None:
                shutil.rmtree(self.root_dir, ignore_errors=True)
                self.root_dir = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines of the server's log."""
        if self.log_path is None:
            return "<no log yet>"
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"<no log at {self.log_path}: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    # -- HTTP API -------------------------------------------------------------------------

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET `/api/v1/<path>` and return its `data`; raise `PrometheusError` on an error.

        Prometheus answers a bad query with HTTP 400 and a JSON body naming the error; that
        message is what the exception carries.
        """
        if self.process is None:
            raise PrometheusError("the server is not running")
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
                body = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read().decode("utf-8"))
            except (ValueError, OSError):
                raise PrometheusError(f"GET {url}: HTTP {exc.code}") from exc
        if body.get("status") != "success":
            raise PrometheusError(
                f"GET {url}: {body.get('errorType', 'error')}: {body.get('error', body)}"
            )
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Evaluate `promql` now, or at Unix time `at` (`/api/v1/query`); return
        `[(labels, value), ...]`.

        An instant vector gives one element per series (sorted by labels); a scalar gives
        one element with empty labels. A range vector is refused: wrap it in a function
        such as `rate()` or `last_over_time()`.
        """
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        kind = data["resultType"]
        if kind == "vector":
            samples = [
                (dict(item["metric"]), _parse_value(item["value"][1])) for item in data["result"]
            ]
            return sorted(samples, key=lambda sample: sorted(sample[0].items()))
        if kind == "scalar":
            return [({}, _parse_value(data["result"][1]))]
        raise PrometheusError(f"{promql!r} gives a {kind}, not an instant vector or scalar")

    def value(self, promql: str, at: float | None = None) -> float:
        """Evaluate `promql` (now, or at Unix time `at`), which must give exactly one series,
        and return its value."""
        samples = self.query(promql, at)
        if len(samples) != 1:
            raise AssertionError(f"{promql!r} gives {len(samples)} series, expected 1: {samples}")
        return samples[0][1]

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list[Sample]], bool] | None = None,
        timeout: float = 30.0,
    ) -> list[Sample]:
        """Poll `promql` until `predicate(samples)` is true, then return the samples.

        The default predicate is "at least one series with a value that is not NaN", which is
        what a freshly scraped metric gives. Raises `AssertionError` after `timeout` seconds
        with the last answer and the targets' health, so a failed scrape shows its error.
        """
        if predicate is None:
            predicate = _has_number
        deadline = time.monotonic() + timeout
        samples: list[Sample] = []
        while True:
            samples = self.query(promql)
            if predicate(samples):
                return samples
            if self.process is None or self.process.poll() is not None:
                raise PrometheusError(f"prometheus is not running:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(
            f"{promql!r} did not satisfy the condition within {timeout:.0f}s; last answer: "
            f"{samples}; targets: {self.targets_health()}"
        )

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (`/api/v1/targets`): `scrapeUrl`, `health` ("up",
        "down" or "unknown" before the first scrape), `lastError`, `lastScrape`, `labels`."""
        data = self.api("targets", {"state": "active"})
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets

    def targets_health(self) -> list[tuple[str, str, str]]:
        """`(scrapeUrl, health, lastError)` of every active target."""
        return [
            (target["scrapeUrl"], target["health"], target.get("lastError", ""))
            for target in self.targets()
        ]

    def wait_until_scraped(self, scrapes: int = 1, timeout: float = 30.0) -> None:
        """Wait until every target has been scraped `scrapes` times, each scrape having
        started after this call, and is up.

        Reads the time of each target's latest scrape from `timestamp(up{job=...})`, so it is
        independent of what the target exposes. Values recorded before the call are in
        Prometheus afterwards. Use it also before recording values that `rate()` must see as
        an increase: a counter's value at its first scrape is the baseline, not an increase.
        """
        expr = f'timestamp(up{{job="{JOB_NAME}"}})'
        deadline = time.monotonic() + timeout
        since = time.time()
        for _ in range(scrapes):

            def newer(samples: list[Sample], since: float = since) -> bool:
                return len(samples) >= len(self.scrape_targets) and all(
                    value > since for _, value in samples
                )

            samples = self.wait_for(expr, newer, max(0.0, deadline - time.monotonic()))
            since = max(value for _, value in samples)
        down = [item for item in self.targets_health() if item[1] != "up"]
        if down:
            raise AssertionError(f"scrape targets are not up: {down}")


def _has_number(samples: list[Sample]) -> bool:
    return any(not math.isnan(value) for _, value in samples)


def require_prometheus() -> str:
    """Return the binary's path; skip the test when it is missing, fail in CI."""
    binary = prometheus_binary()
    if binary is not None:
        return binary
    message = (
        "the prometheus binary is not installed (Debian's `prometheus` package; "
        f"run: bash {INSTALL_SCRIPT.relative_to(REPO_ROOT)})"
    )
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def prometheus_fixture(
    *, scope: str = "function", scrape_interval: str = DEFAULT_SCRAPE_INTERVAL
) -> Any:
    """Build a pytest fixture that yields a starter: `start(*targets) -> PrometheusServer`.

    The test decides its targets (the exporter's port exists only once the test has served
    it), so the fixture hands out a function instead of a running server. Every server it
    started is stopped, and its directory removed, at the fixture's teardown. Bind it to a
    name in a test module or conftest:

        prometheus = prometheus_fixture()

        def test_x(prometheus):
            server = prometheus(f"127.0.0.1:{exporter_port}")
    """

    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[Callable[..., PrometheusServer]]:
        binary = require_prometheus()
        servers: list[PrometheusServer] = []

        def start(*targets: str) -> PrometheusServer:
            server = PrometheusServer(targets, scrape_interval=scrape_interval, binary=binary)
            servers.append(server)
            return server.start()

        try:
            yield start
        finally:
            for server in servers:
                with contextlib.suppress(Exception):
                    server.stop()

    return fixture
