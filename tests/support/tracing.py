"""An instrumented in-memory tracer provider, and helpers to read the span tree it exports.

Fixtures:

- ``instrument``: a factory; ``instrument(**options)`` instruments livekit-agents with
  ``LiveKitAgentsInstrumentor().instrument(tracer_provider=<fresh provider>, **options)``
  and returns a :class:`Tracing`; the instrumentation is undone after the test.
- ``tracing``: ``instrument()`` with the default options.
- ``global_tracer_provider``: ``set_global(provider)`` makes ``provider`` the
  process-global tracer provider for one test, and undoes it afterwards.

A :class:`Tracing` gives the exported spans as a :class:`SpanTree` (``tracing.tree()``)
and counts every span started and ended on the provider (``tracing.lifecycle``), so a
test can check that no span was left open.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from livekit.agents.telemetry import traces as builtin_traces
from livekit_otel_dev.scripted import ScriptedRun, UserTurn, run_scripted_session
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from livekit_otel import LiveKitAgentsInstrumentor

BUILTIN_SCOPE = "livekit-agents"
"""The instrumentation scope of LiveKit's own built-in spans."""


class SpanLifecycle(SpanProcessor):
    """Counts the spans started and ended on a provider, and keeps those still open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0
        self.ended = 0
        self._open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self.started += 1
            self._open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1
            if span.context is not None:
                self._open.pop(span.context.span_id, None)

    @property
    def still_open(self) -> list[str]:
        """The names of the spans started and not (yet) ended."""
        with self._lock:
            return sorted(self._open.values())


class SpanTree:
    """Finished spans, navigable by name and parent; lists are in start-time order."""

    def __init__(self, spans: Iterable[ReadableSpan]) -> None:
        self.spans: list[ReadableSpan] = sorted(spans, key=lambda span: span.start_time or 0)
        self._by_id = {span_id(span): span for span in self.spans}

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self.spans)

    @property
    def names(self) -> Counter[str]:
        """How many spans of each name there are."""
        return Counter(span.name for span in self.spans)

    @property
    def roots(self) -> list[ReadableSpan]:
        """The spans without a parent."""
        return [span for span in self.spans if span.parent is None]

    @property
    def root(self) -> ReadableSpan:
        """The one root span; fails when there is not exactly one."""
        roots = self.roots
        assert len(roots) == 1, f"expected one root span, got {[s.name for s in roots]}"
        return roots[0]

    def named(self, name: str) -> list[ReadableSpan]:
        """Every span called ``name``."""
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The one span called ``name``; fails when there is not exactly one."""
        found = self.named(name)
        assert len(found) == 1, f"expected one {name!r} span, got {len(found)}"
        return found[0]

    def by_id(self, span_id_: int) -> ReadableSpan | None:
        """The span with this span id, if it was exported."""
        return self._by_id.get(span_id_)

    def parent_of(self, span: ReadableSpan) -> ReadableSpan | None:
        """The exported parent of ``span`` (``None`` for a root or an unknown parent)."""
        return self._by_id.get(span.parent.span_id) if span.parent is not None else None

    def children_of(self, span: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        """The direct children of ``span``, only those called ``name`` if given."""
        own = span_id(span)
        return [
            child
            for child in self.spans
            if child.parent is not None
            and child.parent.span_id == own
            and (name is None or child.name == name)
        ]

    def child_names(self, span: ReadableSpan) -> list[str]:
        """The names of the direct children of ``span``, in start order."""
        return [child.name for child in self.children_of(span)]

    def ancestors_of(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The parent, the grandparent, ... up to the root."""
        chain: list[ReadableSpan] = []
        parent = self.parent_of(span)
        while parent is not None:
            chain.append(parent)
            parent = self.parent_of(parent)
        return chain

    def with_attribute(self, key: str, value: Any, name: str | None = None) -> list[ReadableSpan]:
        """The spans (called ``name`` if given) whose attribute ``key`` equals ``value``."""
        return [
            span
            for span in self.spans
            if (name is None or span.name == name) and (span.attributes or {}).get(key) == value
        ]

    def orphans(self) -> list[ReadableSpan]:
        """Spans whose parent is set but was not exported."""
        return [
            span for span in self.spans if span.parent is not None and self.parent_of(span) is None
        ]

    def outside_parent(self) -> list[str]:
        """``child in parent`` for every span that starts before or ends after its parent."""
        offenders: list[str] = []
        for span in self.spans:
            parent = self.parent_of(span)
            if parent is not None and not within(span, parent):
                offenders.append(f"{span.name} in {parent.name}")
        return offenders

    def trace_ids(self) -> set[int]:
        """The distinct trace ids."""
        return {span.context.trace_id for span in self.spans if span.context is not None}

    def scopes(self) -> set[str]:
        """The distinct instrumentation scope names."""
        return {
            span.instrumentation_scope.name for span in self.spans if span.instrumentation_scope
        }

    def outline(self, span: ReadableSpan | None = None, depth: int = 0) -> list[str]:
        """The tree below ``span`` (the root by default), one indented name per line."""
        top = self.root if span is None else span
        lines = ["  " * depth + top.name]
        for child in self.children_of(top):
            lines.extend(self.outline(child, depth + 1))
        return lines


def span_id(span: ReadableSpan) -> int:
    """The span id of a finished span."""
    assert span.context is not None
    return span.context.span_id


def span_id_hex(span: ReadableSpan) -> str:
    """The span id as 16 lowercase hex digits, the way span ids are written in attributes."""
    return format(span_id(span), "016x")


def within(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether ``child`` starts and ends inside ``parent``'s time."""
    assert child.start_time is not None and child.end_time is not None
    assert parent.start_time is not None and parent.end_time is not None
    return parent.start_time <= child.start_time and child.end_time <= parent.end_time


def attributes(span: ReadableSpan) -> dict[str, Any]:
    """The attributes of a span as a plain dict."""
    return dict(span.attributes or {})


def input_of(span: ReadableSpan) -> Any:
    """A span's input as a backend reads it: Langfuse's key, else OpenInference's."""
    values = attributes(span)
    return values.get("langfuse.observation.input", values.get("input.value"))


def output_of(span: ReadableSpan) -> Any:
    """A span's output as a backend reads it: Langfuse's key, else OpenInference's."""
    values = attributes(span)
    return values.get("langfuse.observation.output", values.get("output.value"))


def texts_of(spans: Iterable[ReadableSpan]) -> Iterator[tuple[str, str]]:
    """Every piece of text a span carries, as ``(where, text)``.

    Where: span names, attribute values (strings and string sequences), span event
    names and event attribute values, and status descriptions.
    """
    for span in spans:
        yield f"{span.name} name", span.name
        yield from _attribute_texts(f"{span.name}", span.attributes or {})
        for event in span.events:
            yield f"{span.name} event", event.name
            yield from _attribute_texts(f"{span.name} event {event.name}", event.attributes or {})
        if span.status.description:
            yield f"{span.name} status", span.status.description


def _attribute_texts(where: str, values: Any) -> Iterator[tuple[str, str]]:
    for key, value in values.items():
        if isinstance(value, str):
            yield f"{where} {key}", value
        elif isinstance(value, Sequence):
            for item in value:
                if isinstance(item, str):
                    yield f"{where} {key}", item


def find_texts(spans: Iterable[ReadableSpan], needles: Iterable[str]) -> list[str]:
    """``'needle' at where`` for each needle found in any text the spans carry."""
    wanted = [needle for needle in needles if needle]
    found: list[str] = []
    for where, text in texts_of(spans):
        found.extend(f"{needle!r} at {where}" for needle in wanted if needle in text)
    return found


def metrics_attributes(kind: str, metrics: Any) -> dict[str, Any]:
    """A LiveKit metrics object as the contract copies it: ``lk.<kind>.<field>``.

    Nested models become dotted keys (``lk.llm.metadata.model_name``); the ``type`` tag
    and empty fields are left out.
    """
    result: dict[str, Any] = {}

    def walk(prefix: str, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            elif isinstance(value, (str, bool, int, float)):
                result[prefix + key] = value

    data = metrics.model_dump()
    data.pop("type", None)
    walk(f"lk.{kind}.", data)
    return result


@dataclass
class Tracing:
    """An instrumented tracer provider whose spans are kept in memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    lifecycle: SpanLifecycle
    instrumentor: LiveKitAgentsInstrumentor

    def tree(self) -> SpanTree:
        """The spans exported so far."""
        return SpanTree(self.exporter.get_finished_spans())

    def clear(self) -> None:
        """Forget the spans exported so far."""
        self.exporter.clear()


@dataclass
class TracedRun:
    """A scripted session and the spans it produced."""

    run: ScriptedRun
    tree: SpanTree
    lifecycle: SpanLifecycle


async def trace_session(
    tracing: Tracing, turns: Sequence[UserTurn | str], **session_options: Any
) -> TracedRun:
    """Run a scripted session (``run_scripted_session`` keywords) and collect its spans."""
    tracing.clear()
    run = await run_scripted_session(turns, **session_options)
    return TracedRun(run, tracing.tree(), tracing.lifecycle)


def in_memory_provider() -> tuple[TracerProvider, InMemorySpanExporter, SpanLifecycle]:
    """A tracer provider exporting synchronously to memory, with a start/end counter."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    lifecycle = SpanLifecycle()
    provider.add_span_processor(lifecycle)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter, lifecycle


def _uninstrument_if_needed(instrumentor: LiveKitAgentsInstrumentor) -> None:
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@contextmanager
def instrumented(**options: Any) -> Iterator[Tracing]:
    """livekit-agents instrumented on a fresh in-memory provider, undone on exit."""
    instrumentor = LiveKitAgentsInstrumentor()
    _uninstrument_if_needed(instrumentor)
    provider, exporter, lifecycle = in_memory_provider()
    instrumentor.instrument(tracer_provider=provider, **options)
    try:
        yield Tracing(provider, exporter, lifecycle, instrumentor)
    finally:
        _uninstrument_if_needed(instrumentor)
        provider.shutdown()


@pytest.fixture
def instrument() -> Iterator[Callable[..., Tracing]]:
    """``instrument(**options)``: instrument livekit-agents on a fresh in-memory provider.

    Calling it again replaces the previous instrumentation; all of it is undone after
    the test.
    """
    with ExitStack() as stack:

        def make(**options: Any) -> Tracing:
            stack.close()
            return stack.enter_context(instrumented(**options))

        yield make


@pytest.fixture
def tracing(instrument: Callable[..., Tracing]) -> Tracing:
    """livekit-agents instrumented with the default options on an in-memory provider."""
    return instrument()


@pytest.fixture
def global_tracer_provider() -> Iterator[Callable[[trace.TracerProvider], None]]:
    """``set_global(provider)``: the process-global tracer provider, for this test only.

    OpenTelemetry lets the global provider be set once per process, and tracers obtained
    before that (LiveKit's built-in one among them) bind to it the first time they are
    used. Afterwards this restores the global and re-derives LiveKit's built-in tracer
    from the provider it had, so later tests see the process as it was.
    """
    saved_provider = trace._TRACER_PROVIDER
    saved_once = trace._TRACER_PROVIDER_SET_ONCE
    builtin_provider = builtin_traces.tracer._tracer_provider

    def set_global(provider: trace.TracerProvider) -> None:
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        trace.set_tracer_provider(provider)

    try:
        yield set_global
    finally:
        trace._TRACER_PROVIDER = saved_provider
        trace._TRACER_PROVIDER_SET_ONCE = saved_once
        builtin_traces.tracer.set_provider(builtin_provider)
