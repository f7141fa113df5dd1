"""One benchmark run in its own process: a long scripted audio session under one config.

Run by ``bench/run.py``; prints one JSON object on the last line of stdout::

    python bench/worker.py --config livekit-otel --turns 300

Configs: ``off`` (no tracing), ``builtin`` (LiveKit's own telemetry into an in-memory
exporter), ``livekit-otel`` (our instrumentor into an in-memory exporter, content capture
on), ``livekit-otel-otlp`` (``setup_otlp`` to ``--endpoint``, batch export over HTTP).
``--profile FILE`` writes a cProfile of the session (not of the imports) to ``FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import logging
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

CONFIGS = ("off", "builtin", "livekit-otel", "livekit-otel-otlp")
PAIRED = "paired"
PAIRED_VARIANTS = ("off", "builtin", "livekit-otel", "livekit-otel+metrics")
FLUSH_TIMEOUT_S = 30.0

_PROMPTS = (
    "hello there, how are you today",
    "can you tell me something interesting",
    "that sounds good, go on",
    "what would you recommend for dinner",
)
_CITIES = ("Paris", "Berlin", "Lisbon", "Oslo", "Rome")


@dataclass
class Result:
    """What one run measured; serialized as JSON for the parent."""

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


def script(turns: int) -> list[Any]:
    """The benchmark conversation: plain replies, and a tool call every other turn."""
    from livekit_otel_dev.scripted import ToolCall, UserTurn

    result: list[Any] = []
    for index in range(turns):
        if index % 2:
            city = _CITIES[index % len(_CITIES)]
            call = ToolCall("lookup_weather", {"location": city})
            result.append(UserTurn(f"turn {index}: what is the weather in {city}", reply=call))
        else:
            result.append(UserTurn(f"turn {index}: {_PROMPTS[(index // 2) % len(_PROMPTS)]}"))
    return result


def history_digest(history: list[dict[str, Any]]) -> str:
    """A digest of the conversation's content (no ids or timestamps): same script, same digest."""
    keys = ("type", "role", "content", "name", "arguments", "output", "is_error")
    stable = [[item.get(key) for key in keys] for item in history]
    return hashlib.sha256(json.dumps(stable, default=str).encode()).hexdigest()[:16]


@dataclass
class Tracing:
    """What a config set up: the span counter, the provider, the in-memory exporter."""

    counter: CountingProcessor | None = None
    provider: Any = None
    exporter: Any = None


def install(config: str, endpoint: str | None) -> Tracing:
    """Set up tracing for ``config``."""
    if config == "off":
        return Tracing()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    counter = CountingProcessor()
    if config == "livekit-otel-otlp":
        from livekit_otel import setup_otlp

        if not endpoint:
            raise SystemExit("livekit-otel-otlp needs --endpoint")
        provider = setup_otlp(endpoint, headers={}, metrics=False)
        provider.add_span_processor(counter)
        return Tracing(counter, provider)
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(counter)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if config == "builtin":
        from livekit.agents import telemetry

        telemetry.set_tracer_provider(provider)
    elif config == "livekit-otel":
        from livekit_otel import LiveKitAgentsInstrumentor

        LiveKitAgentsInstrumentor().instrument(tracer_provider=provider, capture_content=True)
    else:
        raise SystemExit(f"unknown config {config!r}; choose from {', '.join(CONFIGS)}")
    return Tracing(counter, provider, exporter)


async def session(result: Result, tracing: Tracing, profiler: cProfile.Profile | None) -> None:
    """Run the scripted conversation, timing each turn from speech start to reply done.

    An in-memory exporter is emptied between turns (untimed), as a real exporter frees
    what it sent: kept spans would grow the heap, and the garbage collector's work, with
    every turn.
    """
    from livekit_otel_dev.scripted import ScriptedConversation

    conversation = ScriptedConversation()
    turns = script(result.turns)
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    await conversation.start()
    for turn in turns:
        wall = time.perf_counter()
        cpu = time.process_time()
        await conversation.user_says(turn)
        result.turn_cpu_ms.append((time.process_time() - cpu) * 1000)
        result.turn_ms.append((time.perf_counter() - wall) * 1000)
        if tracing.exporter is not None:
            tracing.exporter.clear()
    run = await conversation.aclose()
    result.session_s = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    result.history_items = len(run.history)
    result.history_digest = history_digest(run.history)


@dataclass
class Variant:
    """One session of the paired run, and the provider of LiveKit's tracer during its turns."""

    name: str
    builtin_provider: Any
    conversation: Any = None
    result: Result | None = None


async def paired_session(turns: int) -> dict[str, Any]:
    """Four sessions in one process, turns interleaved: off, builtin, livekit-otel, +metrics.

    Turn k of each session runs back to back (order rotated every turn), so a slow spell
    of the machine hits all three alike. ``off`` and ``builtin`` start before livekit-otel
    instruments (so they are not traced by it; its wrappers only pass their calls
    through); LiveKit's own tracer is switched to the builtin config's provider for that
    session's turns only.
    """
    from livekit.agents import telemetry
    from livekit_otel_dev.scripted import ScriptedConversation
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from livekit_otel import LiveKitAgentsInstrumentor
    from livekit_otel.hooks.builtin import PassThroughTracerProvider
    from livekit_otel.mapping.instruments import Instruments

    builtin_exporter = InMemorySpanExporter()
    builtin_counter = CountingProcessor()
    builtin = TracerProvider()
    builtin.add_span_processor(builtin_counter)
    builtin.add_span_processor(SimpleSpanProcessor(builtin_exporter))
    ours_exporter = InMemorySpanExporter()
    ours_counter = CountingProcessor()
    ours = TracerProvider()
    ours.add_span_processor(ours_counter)
    ours.add_span_processor(SimpleSpanProcessor(ours_exporter))
    # the same tracing, plus OpenTelemetry metrics recorded into an SDK meter provider
    metered_exporter = InMemorySpanExporter()
    metered_counter = CountingProcessor()
    metered = TracerProvider()
    metered.add_span_processor(metered_counter)
    metered.add_span_processor(SimpleSpanProcessor(metered_exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    counters = {
        "builtin": builtin_counter,
        "livekit-otel": ours_counter,
        "livekit-otel+metrics": metered_counter,
    }
    telemetry.set_tracer_provider(builtin)  # installs LiveKit's processors once
    # LiveKit's tracer during the other sessions' turns: the global no-op for off (nobody
    # set a provider), the pass-through tracer livekit-otel installs for livekit-otel
    quiet_providers = {
        "off": trace.NoOpTracerProvider(),
        "livekit-otel": PassThroughTracerProvider(),
        "livekit-otel+metrics": PassThroughTracerProvider(),
    }
    variants = {
        name: Variant(name, builtin if name == "builtin" else quiet_providers[name])
        for name in PAIRED_VARIANTS
    }
    for variant in variants.values():
        if variant.name == "livekit-otel":
            # no meter provider anywhere: the instruments record into the API's no-op meter
            LiveKitAgentsInstrumentor().instrument(
                tracer_provider=ours, capture_content=True, builtin_telemetry="keep"
            )
        elif variant.name == "livekit-otel+metrics":
            # a session takes the tracer and instruments in force when it starts
            active = LiveKitAgentsInstrumentor._active
            assert active is not None
            active.state.tracer = metered.get_tracer("livekit_otel")
            active.state.instruments = Instruments(meter_provider.get_meter("livekit_otel"), None)
        telemetry.tracer.set_provider(variant.builtin_provider)
        variant.conversation = ScriptedConversation()
        variant.result = Result(config=variant.name, turns=turns)
        await variant.conversation.start()
    order = list(variants.values())
    for index, turn in enumerate(script(turns)):
        shift = index % len(order)
        for variant in order[shift:] + order[:shift]:
            assert variant.result is not None
            telemetry.tracer.set_provider(variant.builtin_provider)
            wall = time.perf_counter()
            cpu = time.process_time()
            await variant.conversation.user_says(turn)
            variant.result.turn_cpu_ms.append((time.process_time() - cpu) * 1000)
            variant.result.turn_ms.append((time.perf_counter() - wall) * 1000)
            builtin_exporter.clear()
            ours_exporter.clear()
            metered_exporter.clear()
    results: dict[str, Any] = {}
    for variant in order:
        assert variant.result is not None
        telemetry.tracer.set_provider(variant.builtin_provider)
        run = await variant.conversation.aclose()
        variant.result.history_items = len(run.history)
        variant.result.history_digest = history_digest(run.history)
        counter = counters.get(variant.name)
        if counter is not None:
            variant.result.spans_started = counter.started
            variant.result.spans_ended = counter.ended
        results[variant.name] = asdict(variant.result)
    return {"config": PAIRED, "turns": turns, "variants": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=(*CONFIGS, PAIRED), required=True)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP base URL (otlp config)")
    parser.add_argument("--profile", default=None, help="write a cProfile of the session here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import livekit.agents  # noqa: F401  (import cost stays out of the measurement)

    if args.config == PAIRED:
        paired = asyncio.run(paired_session(args.turns))
        sys.stdout.write(json.dumps(paired) + "\n")
        sys.stdout.flush()
        return 0
    tracing = install(args.config, args.endpoint)
    result = Result(config=args.config, turns=args.turns)
    profiler = cProfile.Profile() if args.profile else None
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(session(result, tracing, profiler))
    if tracing.provider is not None:
        flush_started = time.perf_counter()
        tracing.provider.force_flush(int(FLUSH_TIMEOUT_S * 1000))
        result.flush_s = time.perf_counter() - flush_started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_s = (usage.ru_utime - cpu_start.ru_utime) + (usage.ru_stime - cpu_start.ru_stime)
    result.maxrss_kb = usage.ru_maxrss
    if tracing.counter is not None:
        result.spans_started = tracing.counter.started
        result.spans_ended = tracing.counter.ended
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if tracing.provider is not None:
        tracing.provider.shutdown()
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
