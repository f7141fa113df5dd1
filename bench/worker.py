"""One benchmark run in its own process; prints one JSON object on the last line of stdout.

Run by ``bench/run.py``::

    python bench/worker.py --config spans+metrics+content --turns 300
    python bench/worker.py --config paired --turns 300
    python bench/worker.py --config concurrent --traced --sessions 50 --turns 4

``--config`` is one of:

- a variant of :data:`VARIANTS` (``off``, ``builtin``, ``spans``, ``spans+metrics``,
  ``spans+metrics+content``, ``unsampled``): one long scripted audio session traced that way, into
  in-memory exporters;
- ``livekit-otel-otlp``: ``setup_otlp`` to ``--endpoint``, batch export over HTTP;
- ``paired``: every variant as its own session in this one process, turns interleaved
  (see :func:`paired_sessions`);
- ``concurrent``: ``--sessions`` short sessions at once on one event loop, untraced or
  (``--traced``) with spans, metrics and content (see :func:`concurrent_sessions`).

``--profile FILE`` writes a cProfile of the session (not of the imports) to ``FILE``.

CPU per turn is ``time.process_time()`` (every thread of the process) from the user's
start of speech until the event loop has run everything the turn left ready to run
(:func:`settle`), so work a turn schedules for right after its reply (a span ended from a
done callback, a metric recorded from an event) is charged to that turn. Wall time per
turn stops at the end of the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import logging
import resource
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

OTLP = "livekit-otel-otlp"
PAIRED = "paired"
CONCURRENT = "concurrent"
FLUSH_TIMEOUT_S = 30.0
SETTLE_ROUNDS = 50
"""At most this many passes of the event loop after a turn before its CPU time is read."""

_PROMPTS = (
    "hello there, how are you today",
    "can you tell me something interesting",
    "that sounds good, go on",
    "what would you recommend for dinner",
)
_CITIES = ("Paris", "Berlin", "Lisbon", "Oslo", "Rome")


@dataclass(frozen=True)
class Variant:
    """How one benchmark session is traced. Add a session to the bench by adding one here.

    ``options`` are the instrumentor's keyword options for the session (content capture
    and the like); ``conversation`` are keyword options of the dev kit's
    ``ScriptedConversation`` (a session that needs, say, recording).
    """

    name: str
    description: str
    builtin: bool = False
    """LiveKit's own telemetry (``livekit.agents.telemetry.set_tracer_provider``)."""
    spans: bool = False
    """livekit-otel's instrumentor."""
    metrics: bool = False
    """livekit-otel's OpenTelemetry metrics, into an SDK meter provider built as setup
    builds it (an in-memory reader, no exemplar sampling)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    conversation: Mapping[str, Any] = field(default_factory=dict)
    sampled: bool = True
    """``False``: the tracer provider samples no span (``ALWAYS_OFF``), so livekit-otel does
    all its work but the SDK records nothing; against the same variant sampled, the SDK's
    own cost of recording the spans."""


UNSAMPLED = "unsampled"
"""The variant that records no span: against the full one, what the SDK's recording costs."""
VARIANTS: tuple[Variant, ...] = (
    Variant("off", "no tracing"),
    Variant("builtin", "LiveKit's built-in telemetry", builtin=True),
    Variant("spans", "livekit-otel spans, content capture off", spans=True,
            options={"capture_content": False}),
    Variant("spans+metrics", "livekit-otel spans and metrics, content capture off",
            spans=True, metrics=True, options={"capture_content": False}),
    Variant("spans+metrics+content", "livekit-otel spans and metrics, content capture on",
            spans=True, metrics=True, options={"capture_content": True}),
    Variant(UNSAMPLED, "spans+metrics+content with every span unsampled: livekit-otel's "
            "own work and the metrics SDK, without the SDK recording spans",
            spans=True, metrics=True, options={"capture_content": True}, sampled=False),
)  # fmt: skip
VARIANTS_BY_NAME = {variant.name: variant for variant in VARIANTS}
FULL = "spans+metrics+content"
"""The variant the targets are judged on: everything livekit-otel records, on."""


@dataclass
class Result:
    """What one session measured; serialized as JSON for the parent."""

    config: str
    turns: int
    turn_ms: list[float] = field(default_factory=list)
    turn_cpu_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    session_s: float = 0.0
    maxrss_kb: int = 0
    spans_started: int = 0
    spans_ended: int = 0
    history_items: int = 0
    history_digest: str = ""
    flush_s: float = 0.0


class CountingProcessor(SpanProcessor):
    """A span processor that only counts starts and ends (thread safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1


def script(turns: int, marker: str = "") -> list[Any]:
    """The benchmark conversation: plain replies, and a tool call every other turn."""
    from livekit_otel_dev.scripted import ToolCall, UserTurn

    result: list[Any] = []
    for index in range(turns):
        if index % 2:
            city = _CITIES[index % len(_CITIES)]
            call = ToolCall("lookup_weather", {"location": f"{marker}{city}"})
            text = f"{marker}turn {index}: what is the weather in {city}"
            result.append(UserTurn(text, reply=call))
        else:
            text = f"{marker}turn {index}: {_PROMPTS[(index // 2) % len(_PROMPTS)]}"
            result.append(UserTurn(text))
    return result


def history_digest(history: list[dict[str, Any]]) -> str:
    """A digest of the conversation's content (no ids or timestamps): same script, same digest."""
    keys = ("type", "role", "content", "name", "arguments", "output", "is_error")
    stable = [[item.get(key) for key in keys] for item in history]
    return hashlib.sha256(json.dumps(stable, default=str).encode()).hexdigest()[:16]


async def settle() -> None:
    """Let the event loop run what is ready to run (callbacks, woken tasks), a bounded number
    of passes, so that a turn's trailing work is done before the next turn starts."""
    loop = asyncio.get_running_loop()
    for _ in range(SETTLE_ROUNDS):
        if not getattr(loop, "_ready", None):
            return
        await asyncio.sleep(0)


class Tracing:
    """The providers a variant records into: spans counted and kept in memory, metrics read
    in memory. ``clear()`` empties the span exporter, as a real exporter frees what it sent."""

    def __init__(self, variant: Variant) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        self.variant = variant
        self.counter = CountingProcessor()
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=None if variant.sampled else ALWAYS_OFF)
        self.provider.add_span_processor(self.counter)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider: Any = None
        self.reader: Any = None
        if variant.metrics:
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            from livekit_otel.setup.exporters import meter_provider_without_exemplars

            self.reader = InMemoryMetricReader()
            self.meter_provider = meter_provider_without_exemplars([self.reader])

    def clear(self) -> None:
        self.exporter.clear()

    def shutdown(self) -> None:
        self.provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def install(variant: Variant) -> Tracing | None:
    """Set up ``variant``'s tracing for the whole process (one session per process)."""
    if not (variant.builtin or variant.spans):
        return None
    tracing = Tracing(variant)
    if variant.builtin:
        from livekit.agents import telemetry

        telemetry.set_tracer_provider(tracing.provider)
    if variant.spans:
        from livekit_otel import LiveKitAgentsInstrumentor

        LiveKitAgentsInstrumentor().instrument(
            tracer_provider=tracing.provider,
            meter_provider=tracing.meter_provider,
            **variant.options,
        )
    return tracing


def install_otlp(endpoint: str | None) -> tuple[Any, CountingProcessor]:
    """``setup_otlp`` to ``endpoint`` (spans only), with a span counter on its provider."""
    from livekit_otel import setup_otlp

    if not endpoint:
        raise SystemExit(f"{OTLP} needs --endpoint")
    provider = setup_otlp(endpoint, headers={}, metrics=False)
    counter = CountingProcessor()
    provider.add_span_processor(counter)
    return provider, counter


async def timed_turn(conversation: Any, turn: Any, result: Result) -> None:
    """One user turn: wall time to the reply's end, CPU time until the loop has settled."""
    wall = time.perf_counter()
    cpu = time.process_time()
    await conversation.user_says(turn)
    wall_ms = (time.perf_counter() - wall) * 1000
    await settle()
    result.turn_cpu_ms.append((time.process_time() - cpu) * 1000)
    result.turn_ms.append(wall_ms)


async def session(
    result: Result, variant: Variant, tracing: Tracing | None, profiler: cProfile.Profile | None
) -> None:
    """Run the scripted conversation, timing each turn.

    An in-memory exporter is emptied between turns (untimed), as a real exporter frees
    what it sent: kept spans would grow the heap, and the garbage collector's work, with
    every turn.
    """
    from livekit_otel_dev.scripted import ScriptedConversation

    conversation = ScriptedConversation(**variant.conversation)
    turns = script(result.turns)
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    await conversation.start()
    for turn in turns:
        await timed_turn(conversation, turn, result)
        if tracing is not None:
            tracing.clear()
    run = await conversation.aclose()
    result.session_s = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    result.history_items = len(run.history)
    result.history_digest = history_digest(run.history)


@dataclass
class PairedSession:
    """One variant's session in the paired run, and LiveKit's tracer provider for its turns."""

    variant: Variant
    builtin_provider: Any
    tracing: Tracing | None
    conversation: Any = None
    result: Result | None = None


async def paired_sessions(turns: int, variants: Iterable[Variant] = VARIANTS) -> dict[str, Any]:
    """Every variant as its own session in one process, their turns interleaved.

    Turn k of each session runs back to back, one session's turn at a time (the order
    rotated every turn), so a slow spell of the machine hits every variant alike, and the
    process CPU time spent from a turn's start until the loop settles after it is that
    session's: the other sessions sit idle, waiting for their user to speak.

    livekit-otel is instrumented once, keeping LiveKit's own telemetry
    (``builtin_telemetry="keep"``); each session takes the tracer, meter and options in
    force when it starts, so they are set before each traced session starts. The untraced
    and builtin sessions start while livekit-otel records nothing for them (its wrappers
    pass their calls straight through). LiveKit's own tracer is switched, for each
    session's turns, to the builtin variant's provider, or to the pass-through tracer
    livekit-otel installs by default (``builtin_telemetry="auto"``) for livekit-otel's
    variants, or to the no-op tracer for the untraced one.
    """
    from livekit.agents import telemetry
    from livekit_otel_dev.scripted import ScriptedConversation
    from opentelemetry import trace

    from livekit_otel import LiveKitAgentsInstrumentor, set_meter_provider
    from livekit_otel.config import resolve_options
    from livekit_otel.hooks.builtin import PassThroughTracerProvider

    chosen = list(variants)
    sessions: list[PairedSession] = []
    builtin_set = False
    instrumentor = LiveKitAgentsInstrumentor()
    # sessions livekit-otel must not trace start before it instruments
    for variant in sorted(chosen, key=lambda variant: variant.spans):
        tracing = Tracing(variant) if variant.builtin or variant.spans else None
        quiet: Any = trace.NoOpTracerProvider()
        if variant.builtin:
            assert tracing is not None
            if builtin_set:
                raise SystemExit("the paired run takes one builtin variant")
            telemetry.set_tracer_provider(tracing.provider)  # installs LiveKit's processors once
            builtin_set = True
            quiet = tracing.provider
        if variant.spans:
            assert tracing is not None
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(builtin_telemetry="keep")
            active = LiveKitAgentsInstrumentor._active
            assert active is not None
            instrumentor.set_tracer_provider(tracing.provider)
            set_meter_provider(tracing.meter_provider)
            # options have no public setter short of instrumenting again, which would
            # close the sessions already running
            active.state.options = resolve_options(builtin_telemetry="keep", **variant.options)
            quiet = PassThroughTracerProvider()
        sessions.append(PairedSession(variant, quiet, tracing))
        telemetry.tracer.set_provider(quiet)
        conversation = ScriptedConversation(**variant.conversation)
        sessions[-1].conversation = conversation
        sessions[-1].result = Result(config=variant.name, turns=turns)
        await conversation.start()
    for index, turn in enumerate(script(turns)):
        shift = index % len(sessions)
        for paired in sessions[shift:] + sessions[:shift]:
            assert paired.result is not None
            telemetry.tracer.set_provider(paired.builtin_provider)
            await timed_turn(paired.conversation, turn, paired.result)
            for other in sessions:
                if other.tracing is not None:
                    other.tracing.clear()
    results: dict[str, Any] = {}
    for paired in sessions:
        assert paired.result is not None
        telemetry.tracer.set_provider(paired.builtin_provider)
        run = await paired.conversation.aclose()
        paired.result.history_items = len(run.history)
        paired.result.history_digest = history_digest(run.history)
        if paired.tracing is not None:
            paired.result.spans_started = paired.tracing.counter.started
            paired.result.spans_ended = paired.tracing.counter.ended
        results[paired.variant.name] = asdict(paired.result)
    return {"config": PAIRED, "turns": turns, "variants": results}


def call_id(index: int) -> str:
    """The session id of concurrent call ``index``; its marker in every turn's text."""
    return f"call-{index:03d}"


async def concurrent_sessions(sessions: int, turns: int, tracing: Tracing | None) -> dict[str, Any]:
    """``sessions`` scripted calls at once on one event loop (``asyncio.gather``).

    Traced: livekit-otel with spans, metrics (setup's meter provider, in-memory reader)
    and content capture, every call named by ``update_session(session_id=...)`` and its
    turns carrying that name, so a span or text that strays into another call's trace
    shows. Per turn: wall time from speech start to reply end, as each call sees it while
    the others run. ``isolation`` counts what a correct tracer makes zero. ``tracing``
    is what ``install`` set up for the traced run, ``None`` for the untraced one.
    """
    from livekit_otel_dev.scripted import ScriptedConversation

    from livekit_otel import update_session

    traced = tracing is not None
    turn_ms: list[list[float]] = [[] for _ in range(sessions)]
    digests: list[str] = [""] * sessions

    async def call(index: int) -> None:
        conversation = ScriptedConversation()
        if traced:
            update_session(conversation.session, session_id=call_id(index))
        await conversation.start()
        for turn in script(turns, marker=f"[{call_id(index)}] "):
            wall = time.perf_counter()
            await conversation.user_says(turn)
            turn_ms[index].append((time.perf_counter() - wall) * 1000)
        run = await conversation.aclose()
        digests[index] = history_digest(run.history)

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(call(index) for index in range(sessions)))
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu
    data: dict[str, Any] = {
        "config": CONCURRENT,
        "traced": traced,
        "sessions": sessions,
        "turns": turns,
        "turn_ms": turn_ms,
        "digests": digests,
        "elapsed_s": elapsed,
        "cpu_s": cpu_s,
    }
    if tracing is not None:
        data["isolation"] = isolation(tracing.exporter.get_finished_spans(), sessions)
        tracing.shutdown()
    return data


def isolation(spans: Iterable[ReadableSpan], sessions: int) -> dict[str, int]:
    """What would show one call's spans mixed with another's; every count 0 when apart.

    ``traces``: traces found (should equal ``sessions``); the rest count traces (or
    spans) that break a rule: not one ``agent_session`` root, not one session id of our
    calls, a parent outside the trace, text naming another call, a call with no trace.
    """
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        assert span.context is not None
        by_trace[span.context.trace_id].append(span)
    ids = {call_id(index) for index in range(sessions)}
    seen: set[str] = set()
    bad_roots = bad_ids = orphans = strays = 0
    for trace_spans in by_trace.values():
        roots = [span.name for span in trace_spans if span.parent is None]
        bad_roots += roots != ["agent_session"]
        owners = {(span.attributes or {}).get("session.id") for span in trace_spans}
        if len(owners) != 1 or not owners <= ids:
            bad_ids += 1
            continue
        (own,) = owners
        seen.add(str(own))
        span_ids = {span.context.span_id for span in trace_spans if span.context is not None}
        orphans += sum(
            1
            for span in trace_spans
            if span.parent is not None and span.parent.span_id not in span_ids
        )
        text = " ".join(
            value
            for span in trace_spans
            for value in (span.attributes or {}).values()
            if isinstance(value, str)
        )
        strays += any(f"[{other}]" in text for other in ids - {own})
    return {
        "traces": len(by_trace),
        "bad_roots": bad_roots,
        "bad_session_ids": bad_ids,
        "orphan_spans": orphans,
        "traces_naming_another_call": strays,
        "calls_without_trace": len(ids - seen),
    }


def wait_for_go() -> None:
    """Say ``ready`` on stdout, then wait for a line on stdin: runs set up at different
    speeds start their measurement together."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()


def emit(data: dict[str, Any]) -> int:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configs = (*VARIANTS_BY_NAME, OTLP, PAIRED, CONCURRENT)
    parser.add_argument("--config", choices=configs, required=True)
    parser.add_argument("--turns", type=int, default=300, help="turns per session")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP base URL (otlp config)")
    parser.add_argument("--profile", default=None, help="write a cProfile of the session here")
    parser.add_argument("--variants", default=None, help="paired: comma-separated variants")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent: calls at once")
    parser.add_argument("--traced", action="store_true", help="concurrent: trace the calls")
    parser.add_argument(
        "--wait-go", action="store_true", help="print 'ready' once set up, start on a stdin line"
    )
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="no garbage collection (instruction counts: a full pass would decide them)",
    )
    args = parser.parse_args(argv)
    if args.no_gc:
        gc.disable()
    logging.basicConfig(level=logging.WARNING)

    import livekit.agents  # noqa: F401  (import cost stays out of the measurement)

    if args.config == PAIRED:
        names = args.variants.split(",") if args.variants else list(VARIANTS_BY_NAME)
        variants = [VARIANTS_BY_NAME[name] for name in names]
        return emit(asyncio.run(paired_sessions(args.turns, variants)))
    if args.config == CONCURRENT:
        crowd = install(VARIANTS_BY_NAME[FULL]) if args.traced else None
        if args.wait_go:
            wait_for_go()
        return emit(asyncio.run(concurrent_sessions(args.sessions, args.turns, crowd)))
    result = Result(config=args.config, turns=args.turns)
    variant = VARIANTS_BY_NAME.get(args.config, VARIANTS_BY_NAME["off"])
    tracing = install(variant)
    provider: Any = tracing.provider if tracing is not None else None
    counter = tracing.counter if tracing is not None else None
    if args.config == OTLP:
        provider, counter = install_otlp(args.endpoint)
    profiler = cProfile.Profile() if args.profile else None
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(session(result, variant, tracing, profiler))
    if provider is not None:
        flush_started = time.perf_counter()
        provider.force_flush(int(FLUSH_TIMEOUT_S * 1000))
        result.flush_s = time.perf_counter() - flush_started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_s = (usage.ru_utime - cpu_start.ru_utime) + (usage.ru_stime - cpu_start.ru_stime)
    result.maxrss_kb = usage.ru_maxrss
    if counter is not None:
        result.spans_started = counter.started
        result.spans_ended = counter.ended
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if tracing is not None:
        tracing.shutdown()
    elif provider is not None:
        provider.shutdown()
    return emit(asdict(result))


if __name__ == "__main__":
    sys.exit(main())
