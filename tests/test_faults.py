"""A failing backend or a failing livekit-otel never changes, slows or breaks the session.

Backend faults use the local OTLP receiver: connection refused, a 30 s hang, 401 and 500.
``setup_otlp`` exports from the ``BatchSpanProcessor``'s own thread; with a 20 ms
schedule delay exports (and their failures) happen while the turns run, so a blocked
event loop would show in the turn times. Each fault runs next to an untraced run of the
same script, in the same fixture, and the two are compared.

Instrumentation faults: a tracer provider whose tracers raise, one whose spans raise from
every method, and a ``SessionRecorder`` whose hooks raise one at a time.

Metrics backend faults: ``setup_otlp`` sends the spans to a working receiver and the
metrics (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``) to the failing one, with a 20 ms export
interval, so failed metric exports happen while the turns run. The same checks apply, and
the memory that livekit-otel, the SDK and the exporter hold after many failed exports must
not grow with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url
from livekit_otel_dev.scripted import ScriptedConversation, ToolCall, UserTurn
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from livekit_otel import LiveKitAgentsInstrumentor, installed_meter_provider, setup_otlp
from livekit_otel.hooks.guard import Guard, Hook
from livekit_otel.hooks.table import HOOKS
from livekit_otel.recording import registry as lifecycle
from livekit_otel.setup import installed as setup_state
from support.tracing import SpanLifecycle

EXPORT_TIMEOUT_S = 3.0
"""Per-export bound given to setup_otlp: an export on the event loop would stall a turn so long."""
BUSY_SCHEDULE_DELAY_MS = "20"
DEFAULT_SCHEDULE_DELAY_MS = "5000"  # the SDK's default: a short session is one batch
SLOWDOWN_FACTOR = 3.0
SLOWDOWN_SLACK_S = 0.5
MAX_EXPORT_LOG_RECORDS = 5
BACKEND_FAULTS = ("refused", "hang", "unauthorized", "server_error")
# LiveKit hooks that a scripted pipeline call never reaches: a realtime model's, and one of the
# two call sites of perform_audio_forwarding (which one depends on the release)
NOT_IN_A_PIPELINE_CALL = {
    "AgentActivity._realtime_generation_task",
    "AgentActivity._on_input_speech_started",
    "AgentActivity._on_input_speech_stopped",
    "AgentActivity._on_input_audio_transcription_completed",
    "perform_audio_forwarding",
}
OPTIONS_A_HOOK_FEEDS: dict[str, dict[str, Any]] = {"AgentActivity.push_audio": {"audio": "turns"}}
"""Hooks whose own code runs only with an option on: their faulted run turns it on."""
OUR_LOGGER = "livekit_otel"
EXPORT_LOGGERS = ("opentelemetry", OUR_LOGGER)
COMPARED_KEYS = ("type", "role", "content", "name", "arguments", "output", "is_error")
CONVERSATION_ITEMS = ("message", "function_call", "function_call_output")

SCRIPT = (
    UserTurn("hello there"),
    UserTurn(
        "what is the weather in Paris", reply=ToolCall("lookup_weather", {"location": "Paris"})
    ),
    UserTurn(
        "book a table at Chez Nous", reply=ToolCall("book_table", {"restaurant": "Chez Nous"})
    ),
    UserTurn("tell me something nice"),
    UserTurn("and the weather in Oslo", reply=ToolCall("lookup_weather", {"location": "Oslo"})),
    UserTurn("thanks, goodbye"),
)


# -- running sessions -------------------------------------------------------------------------
@dataclass
class Session:
    """One run of ``SCRIPT``: its conversation, per-turn wall times and what was logged."""

    conversation: list[list[Any]]
    turn_seconds: list[float]
    records: list[logging.LogRecord] = field(default_factory=list)
    attempts_during_turns: int = 0
    escaped: str | None = None
    """The exception that escaped the session, if one did."""

    @property
    def total_seconds(self) -> float:
        return sum(self.turn_seconds)


def conversation_of(history: list[dict[str, Any]]) -> list[list[Any]]:
    """The conversation's content (no ids or timestamps): messages and tool calls in order."""
    return [
        [item.get(key) for key in COMPARED_KEYS]
        for item in history
        if item.get("type") in CONVERSATION_ITEMS
    ]


class Records(logging.Handler):
    """Keeps the records of the loggers livekit-otel and the exporter write to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(EXPORT_LOGGERS):
            self.records.append(record)

    def warnings(self, logger: str | None = None) -> list[logging.LogRecord]:
        return [
            record
            for record in self.records
            if record.levelno >= logging.WARNING
            and (logger is None or record.name.startswith(logger))
        ]


@contextmanager
def recording_logs() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def typical_turn(session: Session) -> float:
    """The median turn's seconds. Exports run every 20 ms here, so a turn that waited for
    one (up to its timeout) would make nearly every turn that slow; one turn stalled by the
    rest of a busy machine does not move the median."""
    return statistics.median(session.turn_seconds)


async def play(attempts: Callable[[], int] | None = None) -> Session:
    """Play ``SCRIPT`` turn by turn through the audio path, timing each turn."""
    conversation = ScriptedConversation()
    await conversation.start()
    seconds: list[float] = []
    for turn in SCRIPT:
        started = time.perf_counter()
        await conversation.user_says(turn)
        seconds.append(time.perf_counter() - started)
    during = attempts() if attempts is not None else 0
    run = await conversation.aclose()
    return Session(conversation_of(run.history), seconds, attempts_during_turns=during)


def play_catching(attempts: Callable[[], int] | None = None) -> Session:
    """``play`` in a fresh event loop; an exception that escapes is kept, not raised."""
    try:
        return asyncio.run(play(attempts))
    except Exception as error:
        return Session([], [], escaped=f"{type(error).__name__}: {error}")


def uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


def play_untraced() -> Session:
    uninstrument()
    return asyncio.run(play())


@contextmanager
def instrumented_with(provider: trace.TracerProvider, **options: Any) -> Iterator[None]:
    uninstrument()
    LiveKitAgentsInstrumentor().instrument(tracer_provider=provider, **options)
    try:
        yield
    finally:
        uninstrument()


# -- backend faults ---------------------------------------------------------------------------
@dataclass
class FaultyBackend:
    """Where setup_otlp exports to, and how to count the export attempts it made."""

    endpoint: str
    receiver: OtlpReceiver | None


@contextmanager
def faulty_backend(fault: str) -> Iterator[FaultyBackend]:
    if fault == "refused":
        yield FaultyBackend(refused_url(), None)
        return
    receiver = OtlpReceiver().start()
    if fault == "hang":
        receiver.respond(delay=30.0)
    elif fault == "unauthorized":
        receiver.respond(status=401)
    elif fault == "server_error":
        receiver.respond(status=500)
    try:
        yield FaultyBackend(receiver.url, receiver)
    finally:
        receiver.stop()  # ends the hang at once


def export_attempts(backend: FaultyBackend, logs: Records) -> Callable[[], int]:
    """Export attempts so far: requests the receiver got, or failures the exporter logged."""
    if backend.receiver is not None:
        receiver = backend.receiver
        return lambda: len(receiver.requests)
    return lambda: len(logs.warnings("opentelemetry"))


@contextmanager
def exporting_to(
    backend: FaultyBackend, schedule_delay_ms: str
) -> Iterator[tuple[TracerProvider, SpanLifecycle]]:
    """``setup_otlp`` to ``backend``; shut down (without waiting on the fault) afterwards."""
    uninstrument()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(setup_state, "_installed", None)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms)
        provider = setup_otlp(backend.endpoint, headers={}, timeout=EXPORT_TIMEOUT_S, metrics=False)
    lifecycle = SpanLifecycle()
    provider.add_span_processor(lifecycle)
    try:
        yield provider, lifecycle
    finally:
        uninstrument()
        if backend.receiver is not None:
            backend.receiver.release()
        provider.shutdown()


@dataclass
class FaultRun:
    """An untraced run and a run exporting to a failing backend, back to back."""

    untraced: Session
    traced: Session


@pytest.fixture(scope="module", params=BACKEND_FAULTS)
def fault_run(request: pytest.FixtureRequest) -> Iterator[FaultRun]:
    with faulty_backend(request.param) as backend:
        untraced = play_untraced()
        with recording_logs() as logs, exporting_to(backend, BUSY_SCHEDULE_DELAY_MS):
            traced = play_catching(export_attempts(backend, logs))
        traced.records = logs.records
        yield FaultRun(untraced, traced)


def test_no_exception_escapes_when_the_backend_fails(fault_run: FaultRun) -> None:
    assert fault_run.traced.escaped is None


def test_session_history_is_unchanged_when_the_backend_fails(fault_run: FaultRun) -> None:
    assert fault_run.traced.conversation == fault_run.untraced.conversation


def test_exports_were_attempted_while_the_turns_ran(fault_run: FaultRun) -> None:
    assert fault_run.traced.attempts_during_turns >= 1


def test_turns_are_not_slowed_by_a_failing_backend(fault_run: FaultRun) -> None:
    bound = SLOWDOWN_FACTOR * fault_run.untraced.total_seconds + SLOWDOWN_SLACK_S
    assert fault_run.traced.total_seconds <= bound, (
        f"turns took {fault_run.traced.turn_seconds} s traced, "
        f"{fault_run.untraced.turn_seconds} s untraced"
    )
    assert typical_turn(fault_run.traced) < EXPORT_TIMEOUT_S


def test_livekit_otel_itself_does_not_log_when_the_backend_fails(fault_run: FaultRun) -> None:
    ours = [
        record.getMessage()
        for record in fault_run.traced.records
        if record.name.startswith(OUR_LOGGER) and record.levelno >= logging.WARNING
    ]
    assert ours == []


@pytest.mark.parametrize("fault", BACKEND_FAULTS)
def test_a_failing_backend_logs_a_few_warnings_not_one_per_span(fault: str) -> None:
    with (
        faulty_backend(fault) as backend,
        recording_logs() as logs,
        exporting_to(backend, DEFAULT_SCHEDULE_DELAY_MS) as (provider, lifecycle),
    ):
        asyncio.run(play())
        provider.force_flush(timeout_millis=int(2 * EXPORT_TIMEOUT_S * 1000))
        warnings = logs.warnings()
    assert lifecycle.ended >= 6 * len(SCRIPT)
    assert 1 <= len(warnings) <= MAX_EXPORT_LOG_RECORDS, [r.getMessage() for r in warnings]


# -- metrics backend faults -------------------------------------------------------------------
METRIC_EXPORT_TIMEOUT_S = 1.0
"""Per metric export request; also what a final export to a refused port retries for."""
BUSY_METRIC_INTERVAL_MS = "20"
DEFAULT_METRIC_INTERVAL_MS = "60000"  # the SDK's default: only a flush exports
WARM_TURNS = 10
MEMORY_TURNS = 40
# What the metrics path (livekit-otel's instruments, the SDK's metrics code, the OTLP
# exporters, protobuf, the HTTP client) holds while metric exports fail every 20 ms,
# looked at after MEMORY_TURNS turns and again after as many more (each time the fewest of
# each type over a few looks, so exports in flight do not count). Live objects of those
# packages must not grow between the two beyond what the exports in flight hold (a hung
# metric export and a span export can both be waiting on their timeout across every look:
# up to about 45 objects seen); a failed export kept per attempt (two or more per window:
# each one waits for its timeout) would add its MetricsData tree, request and response,
# 40 objects or more each, so 80 or more.
# Bytes held by blocks they allocated must stay within MAX_METRICS_MEMORY_HELD: measured
# here 40-80 KB after either window, most of it CPython's free lists of dicts charged to
# the line that last allocated them.
# (Spans and contexts are test_leaks.py's: LiveKit's chat history holds them here, as it
# keeps every turn until the agent trims it.)
MAX_METRICS_MEMORY_HELD = 256 * 1024
MAX_METRICS_OBJECT_GROWTH = 60
_METRICS_MODULES = (
    "opentelemetry.sdk.metrics",
    "opentelemetry.exporter",
    "opentelemetry.proto",
    "google.protobuf",
    "requests",
    "urllib3",
    "http.client",
)
_METRICS_CODE = (
    tracemalloc.Filter(True, "*/livekit_otel/meters.py"),
    tracemalloc.Filter(True, "*/opentelemetry/sdk/metrics/*"),
    tracemalloc.Filter(True, "*/opentelemetry/exporter/*"),
    tracemalloc.Filter(True, "*/opentelemetry/proto/*"),
    tracemalloc.Filter(True, "*/google/protobuf/*"),
    tracemalloc.Filter(True, "*/requests/*"),
    tracemalloc.Filter(True, "*/urllib3/*"),
)


def metric_export_attempts(backend: FaultyBackend, logs: Records) -> Callable[[], int]:
    """Metric export attempts so far: requests to /v1/metrics, or failures logged."""
    if backend.receiver is not None:
        receiver = backend.receiver
        return lambda: sum(1 for r in receiver.requests if r.path == "/v1/metrics")
    return lambda: len(logs.warnings("opentelemetry"))


@contextmanager
def metrics_exporting_to(backend: FaultyBackend, interval_ms: str) -> Iterator[MeterProvider]:
    """``setup_otlp``: spans to a working receiver (exported every 20 ms, so they are not
    held), metrics to ``backend``; afterwards the meter provider is shut down, its final
    export bounded by the export timeout, before the next test reads the logs."""
    uninstrument()
    spans = OtlpReceiver().start()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(setup_state, "_installed", None)
        monkeypatch.setattr(setup_state, "_served", None)
        monkeypatch.setattr(lifecycle, "_every_job", {})
        monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", spans.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", backend.endpoint + "/v1/metrics")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", interval_ms)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", BUSY_SCHEDULE_DELAY_MS)
        provider = setup_otlp(headers={}, timeout=METRIC_EXPORT_TIMEOUT_S)
        meter_provider = installed_meter_provider()
    assert meter_provider is not None
    try:
        yield meter_provider
    finally:
        uninstrument()
        if backend.receiver is not None:
            backend.receiver.release()
        meter_provider.shutdown()
        provider.shutdown()
        spans.stop()


@pytest.fixture(scope="module", params=BACKEND_FAULTS)
def metrics_fault_run(request: pytest.FixtureRequest) -> Iterator[FaultRun]:
    with faulty_backend(request.param) as backend:
        untraced = play_untraced()
        with recording_logs() as logs, metrics_exporting_to(backend, BUSY_METRIC_INTERVAL_MS):
            traced = play_catching(metric_export_attempts(backend, logs))
        traced.records = logs.records
        yield FaultRun(untraced, traced)


def test_no_exception_escapes_when_the_metrics_backend_fails(metrics_fault_run: FaultRun) -> None:
    assert metrics_fault_run.traced.escaped is None


def test_session_history_is_unchanged_when_the_metrics_backend_fails(
    metrics_fault_run: FaultRun,
) -> None:
    assert metrics_fault_run.traced.conversation == metrics_fault_run.untraced.conversation


def test_metric_exports_were_attempted_while_the_turns_ran(metrics_fault_run: FaultRun) -> None:
    assert metrics_fault_run.traced.attempts_during_turns >= 1


def test_turns_are_not_slowed_by_a_failing_metrics_backend(metrics_fault_run: FaultRun) -> None:
    bound = SLOWDOWN_FACTOR * metrics_fault_run.untraced.total_seconds + SLOWDOWN_SLACK_S
    assert metrics_fault_run.traced.total_seconds <= bound, (
        f"turns took {metrics_fault_run.traced.turn_seconds} s with metrics, "
        f"{metrics_fault_run.untraced.turn_seconds} s untraced"
    )
    assert typical_turn(metrics_fault_run.traced) < METRIC_EXPORT_TIMEOUT_S


def test_livekit_otel_itself_does_not_log_when_the_metrics_backend_fails(
    metrics_fault_run: FaultRun,
) -> None:
    ours = [
        record.getMessage()
        for record in metrics_fault_run.traced.records
        if record.name.startswith(OUR_LOGGER) and record.levelno >= logging.WARNING
    ]
    assert ours == []


@pytest.mark.parametrize("fault", BACKEND_FAULTS)
def test_a_failing_metrics_backend_logs_a_few_warnings_not_one_per_turn(fault: str) -> None:
    with (
        faulty_backend(fault) as backend,
        recording_logs() as logs,
        metrics_exporting_to(backend, DEFAULT_METRIC_INTERVAL_MS) as meter_provider,
    ):
        asyncio.run(play())
        # the SDK raises when a reader failed, which lifecycle's flush catches
        with contextlib.suppress(Exception):
            meter_provider.force_flush(timeout_millis=int(2 * METRIC_EXPORT_TIMEOUT_S * 1000))
        warnings = logs.warnings()
    assert 1 <= len(warnings) <= MAX_EXPORT_LOG_RECORDS, [r.getMessage() for r in warnings]


async def play_turns(conversation: ScriptedConversation, count: int, start: int) -> None:
    for index in range(start, start + count):
        weather = ToolCall("lookup_weather", {"location": "Paris"})
        turn = UserTurn(f"turn {index}", reply=weather if index % 2 else None)
        await conversation.user_types(turn)


def held_bytes(snapshot: tracemalloc.Snapshot) -> tuple[int, list[str]]:
    stats = snapshot.filter_traces(_METRICS_CODE).statistics("lineno")
    return sum(stat.size for stat in stats), [str(stat) for stat in stats[:5]]


def metrics_objects() -> Counter[str]:
    """Live objects of the metrics path's packages, by type."""
    gc.collect()
    found: Counter[str] = Counter()
    for thing in gc.get_objects():
        kind = type(thing)
        module = getattr(kind, "__module__", None)
        if isinstance(module, str) and module.startswith(_METRICS_MODULES):
            found[f"{module}.{kind.__qualname__}"] += 1
    return found


async def lasting_metrics_objects(samples: int = 4, apart: float = 0.1) -> Counter[str]:
    """Live objects of the metrics path that stay: the fewest of each type over a few looks.

    Exports run in the SDK's thread every 20 ms: what one has in flight comes and goes
    between looks, what is kept does not.
    """
    lasting = metrics_objects()
    for _ in range(samples - 1):
        await asyncio.sleep(apart)
        now = metrics_objects()
        lasting = Counter({kind: min(count, now[kind]) for kind, count in lasting.items()})
    return lasting


class CountedFailures(logging.Handler):
    """Counts the exporters' warnings without keeping the records (a kept record holds its
    exception, and with it the HTTP client's objects, which would count as held here;
    pytest's log capture keeps them too)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            self.count += 1


@pytest.mark.parametrize("fault", ["refused", "hang"])
def test_memory_stays_bounded_while_metric_exports_fail(fault: str) -> None:
    failures = CountedFailures()

    async def converse(
        attempts: Callable[[], int],
    ) -> tuple[list[Counter[str]], int, list[str], int]:
        conversation = ScriptedConversation()
        await conversation.start()
        await play_turns(conversation, WARM_TURNS, 0)
        gc.collect()
        tracemalloc.start(1)
        censuses: list[Counter[str]] = []
        try:
            for window in range(2):
                await play_turns(conversation, MEMORY_TURNS, WARM_TURNS + window * MEMORY_TURNS)
                censuses.append(await lasting_metrics_objects())
            held, top = held_bytes(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        await conversation.aclose()
        return censuses, held, top, attempts()

    # counted, not kept: neither by pytest's log capture nor by a test handler
    exporters = logging.getLogger("opentelemetry")
    exporters.addHandler(failures)
    exporters.propagate = False
    try:
        with (
            faulty_backend(fault) as backend,
            metrics_exporting_to(backend, BUSY_METRIC_INTERVAL_MS),
        ):
            if backend.receiver is not None:
                receiver = backend.receiver
                attempts: Callable[[], int] = lambda: len(receiver.requests)  # noqa: E731
            else:
                attempts = lambda: failures.count  # noqa: E731
            (early, late), held, top, tried = asyncio.run(converse(attempts))
    finally:
        exporters.removeHandler(failures)
        exporters.propagate = True

    grown = {kind: late[kind] - early[kind] for kind in late if late[kind] > early[kind]}
    assert tried >= 2
    assert sum(grown.values()) <= MAX_METRICS_OBJECT_GROWTH, grown
    assert held <= MAX_METRICS_MEMORY_HELD, (held, top)


# -- instrumentation faults -------------------------------------------------------------------
class Broken(RuntimeError):
    """What the broken tracers, spans and recorder raise."""


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise Broken("livekit-otel test fault")


class RaisingTracer(trace.Tracer):
    """A tracer whose every method raises."""

    start_span = _raise
    start_as_current_span = _raise  # type: ignore[assignment]


class RaisingSpan(trace.Span):
    """A span whose every method raises."""

    end = _raise
    get_span_context = _raise
    set_attributes = _raise
    set_attribute = _raise
    add_event = _raise
    add_link = _raise
    update_name = _raise
    is_recording = _raise
    set_status = _raise
    record_exception = _raise


class SpanRaisingTracer(trace.Tracer):
    """A tracer that hands out spans whose every method raises."""

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return RaisingSpan()

    start_as_current_span = _raise  # type: ignore[assignment]


class BrokenProvider(trace.TracerProvider):
    """A tracer provider whose tracers are ``tracer``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


@dataclass
class BrokenRun:
    """An untraced run and a run with broken instrumentation, and our logger's warnings."""

    untraced: Session
    broken: Session
    warnings: list[str]


def play_broken(provider: trace.TracerProvider, **options: Any) -> BrokenRun:
    untraced = play_untraced()
    with recording_logs() as logs, instrumented_with(provider, **options):
        broken = play_catching()
    warnings = [record.getMessage() for record in logs.warnings(OUR_LOGGER)]
    return BrokenRun(untraced, broken, warnings)


@pytest.fixture(scope="module", params=["tracer_raises", "spans_raise"])
def broken_provider_run(request: pytest.FixtureRequest) -> BrokenRun:
    tracer = RaisingTracer() if request.param == "tracer_raises" else SpanRaisingTracer()
    return play_broken(BrokenProvider(tracer))


@dataclass
class FaultedHookRun(BrokenRun):
    """A run with a fault planted in one hook of the table, and how often that hook ran."""

    hook: Hook
    runs: int


@pytest.fixture(scope="module", params=HOOKS, ids=[f"{h.module}:{h.attribute}" for h in HOOKS])
def faulted_hook_run(request: pytest.FixtureRequest) -> Iterator[FaultedHookRun]:
    """Every piece of livekit-otel's own code in one hook raises; the rest works."""
    target: Hook = request.param
    runs = 0
    guarded_call = Guard.call

    def call(guard: Guard, hook: Hook, function: Callable[..., Any], *args: Any) -> Any:
        nonlocal runs
        if hook is not target:
            return guarded_call(guard, hook, function, *args)
        runs += 1
        return guarded_call(guard, hook, _raise, *args)

    provider = TracerProvider()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(Guard, "call", call)
        run = play_broken(provider, **OPTIONS_A_HOOK_FEEDS.get(target.attribute, {}))
        yield FaultedHookRun(run.untraced, run.broken, run.warnings, target, runs)
    provider.shutdown()


def test_no_exception_escapes_when_the_tracer_provider_raises(
    broken_provider_run: BrokenRun,
) -> None:
    assert broken_provider_run.broken.escaped is None


def test_session_history_is_unchanged_when_the_tracer_provider_raises(
    broken_provider_run: BrokenRun,
) -> None:
    assert broken_provider_run.broken.conversation == broken_provider_run.untraced.conversation


def test_a_raising_tracer_provider_is_warned_about_once_per_hook(
    broken_provider_run: BrokenRun,
) -> None:
    repeated = {m: n for m, n in Counter(broken_provider_run.warnings).items() if n > 1}
    assert broken_provider_run.warnings
    assert repeated == {}


def test_no_exception_escapes_when_a_hook_faults(faulted_hook_run: FaultedHookRun) -> None:
    assert faulted_hook_run.broken.escaped is None


def test_session_history_is_unchanged_when_a_hook_faults(
    faulted_hook_run: FaultedHookRun,
) -> None:
    assert faulted_hook_run.broken.conversation == faulted_hook_run.untraced.conversation


def test_a_pipeline_call_reaches_every_pipeline_hook(faulted_hook_run: FaultedHookRun) -> None:
    if faulted_hook_run.hook.attribute not in NOT_IN_A_PIPELINE_CALL:
        assert faulted_hook_run.runs > 0


def test_a_faulting_hook_is_warned_about_once_under_its_own_name(
    faulted_hook_run: FaultedHookRun,
) -> None:
    name = faulted_hook_run.hook.name
    about_it = [w for w in faulted_hook_run.warnings if f"inside its {name} hook" in w]
    assert len(about_it) == (1 if faulted_hook_run.runs else 0)
