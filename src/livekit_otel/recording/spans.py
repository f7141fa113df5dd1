"""Opening the spans of one session: under the session, or each turn in a trace of its own.

Every start and end time is given explicitly, from :func:`now`, so that no span mixes the
SDK's clock with ours: a test that fakes ``time.time`` moves every span with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Tracer

from ..mapping.conventions import Attributes, Conventions
from ..mapping.facts import SessionFacts
from ..mapping.prices import table_for
from .call import CallTally

_NS = 1_000_000_000

# makes a callback of ours safe to hand to LiveKit or asyncio (the hooks' guard provides it)
Protect = Callable[[Callable[..., None]], Callable[..., None]]


def now() -> float:
    """The one clock of every span: ``time.time()``, the clock LiveKit dates its events by."""
    return time.time()


def ns(seconds: float) -> int:
    """A ``time.time()`` value as an OpenTelemetry timestamp."""
    return int(seconds * _NS)


def seconds(value: Any) -> float | None:
    """A LiveKit duration, or ``None`` when it is missing or negative (unknown)."""
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


class SessionSpans:
    """Starts the spans of one session with the attributes every one of them carries."""

    def __init__(
        self,
        tracer: Tracer,
        conventions: Conventions,
        facts: SessionFacts,
        trace_per_turn: bool,
    ) -> None:
        self.tracer = tracer
        self.conventions = conventions
        self.facts = facts
        self.trace_per_turn = trace_per_turn
        self.common = conventions.common(facts)
        self.session_span: Span = trace.INVALID_SPAN
        self.session_context = Context()
        # the call at a glance and its costs, summed as its spans end
        self.call = CallTally(table_for(conventions.options.prices))

    def open_session(self, name: str, attributes: Attributes, start: float) -> Span:
        """Start the root ``agent_session`` span."""
        self.session_span = self.tracer.start_span(
            name, context=Context(), attributes={**self.common, **attributes}, start_time=ns(start)
        )
        self.session_context = trace.set_span_in_context(self.session_span)
        return self.session_span

    def refresh(self) -> None:
        """The session's user, tags or metadata changed: spans from now on carry the new ones."""
        self.common = self.conventions.common(self.facts)

    def child(
        self,
        name: str,
        parent: Context,
        attributes: Attributes | None = None,
        start_time: int | None = None,
        links: list[Link] | None = None,
    ) -> Span:
        """Start a span with the session's common attributes."""
        merged = {**self.common, **attributes} if attributes else self.common
        return self.tracer.start_span(
            name,
            context=parent,
            attributes=merged,
            start_time=ns(now()) if start_time is None else start_time,
            links=links,
        )

    def top_level(
        self, name: str, owner: Context | None = None
    ) -> tuple[Context, Attributes, list[Link] | None]:
        """Where a turn span goes: under the session, or (per-turn traces) in its reply's trace."""
        if not self.trace_per_turn:
            return self.session_context, {}, None
        if owner is not None:
            return owner, {}, None
        link = Link(self.session_span.get_span_context())
        return Context(), self.conventions.trace_root(name, self.facts), [link]

    def end(self, span: Span, error: BaseException | None = None, at: float | None = None) -> None:
        """End a span now (or ``at``); ERROR status when ``error`` is an exception of the call."""
        if error is not None and not isinstance(error, GeneratorExit):
            self.conventions.record_error(span, error)
        span.end(ns(now() if at is None else at))
