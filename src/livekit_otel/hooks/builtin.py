"""LiveKit's built-in telemetry, kept out of livekit-otel's traces (``builtin_telemetry``).

LiveKit's own spans go through a module tracer whose provider ``livekit.agents.telemetry``
swaps. At ``instrument()`` livekit-otel gives it a pass-through provider when those spans
would otherwise reach the user's exporter, and restores the previous one at
``uninstrument()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context


def _builtin_tracer() -> Any | None:
    try:
        from livekit.agents import telemetry
    except Exception:
        return None
    return getattr(telemetry, "tracer", None)


def builtin_provider() -> Any | None:
    """The provider LiveKit's own spans go to (the global one unless it was set explicitly)."""
    builtin = _builtin_tracer()
    if builtin is None:
        return None
    provider = getattr(builtin, "_tracer_provider", None)
    if provider is None or isinstance(provider, trace.ProxyTracerProvider):
        return trace.get_tracer_provider()
    return provider


def builtin_reaches(provider: Any) -> bool:
    """Whether LiveKit's built-in spans would be exported through ``provider``."""
    return provider is not None and builtin_provider() is provider


class _PassThroughTracer(trace.Tracer):
    """Records nothing, but makes its non-recording span current, carrying the parent's context.

    OpenTelemetry API releases before 1.44 (which livekit-agents 1.3.6 to 1.6.7 pin) have a
    no-op tracer that does not make its span current; LiveKit then writes its attributes on,
    and ends, whatever span is current, ours included. This tracer behaves like the newer
    no-op tracer on every API release.
    """

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        return _pass_through(trace.get_current_span(context))

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        parent = trace.get_current_span(context)
        span = _pass_through(parent)
        if context is None and span is parent:
            # nested in another of LiveKit's spans: its pass-through span is current already
            yield span
            return
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)


def _pass_through(parent: trace.Span) -> trace.Span:
    """The non-recording span LiveKit gets under ``parent``: the parent itself when it records
    nothing, else one carrying its context."""
    try:
        if isinstance(parent, trace.NonRecordingSpan):
            return parent
        return trace.NonRecordingSpan(parent.get_span_context())
    except Exception:  # a broken span of someone else's must not break LiveKit
        return trace.INVALID_SPAN


class PassThroughTracerProvider(trace.NoOpTracerProvider):
    """The provider livekit-otel gives LiveKit's built-in telemetry to keep it out of traces.

    A no-op provider to LiveKit: when LiveKit Cloud's recording starts with a job, LiveKit
    replaces it with a provider of its own, as it would replace no provider at all.
    """

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _PassThroughTracer()


def silence_builtin() -> Any | None:
    """Send LiveKit's built-in spans nowhere; returns what to pass to :func:`restore_builtin`."""
    builtin = _builtin_tracer()
    set_provider = getattr(builtin, "set_provider", None)
    if builtin is None or not callable(set_provider):
        return None
    previous = getattr(builtin, "_tracer_provider", None)
    set_provider(PassThroughTracerProvider())
    return previous


def restore_builtin(previous: Any | None) -> None:
    """Undo :func:`silence_builtin`."""
    builtin = _builtin_tracer()
    set_provider = getattr(builtin, "set_provider", None)
    if previous is not None and callable(set_provider):
        set_provider(previous)


def builtin_follows_global() -> bool:
    """Whether nobody chose a provider for LiveKit's built-in spans (they follow the global)."""
    builtin = _builtin_tracer()
    if builtin is None:
        return False
    provider = getattr(builtin, "_tracer_provider", None)
    return provider is None or isinstance(provider, trace.ProxyTracerProvider)
