"""``LiveKitAgentsInstrumentor``: the wrap table, and where the plugin's spans go."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, TextIO

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

from . import compat, terminal
from .config import resolve_options
from .hooks import builtin
from .hooks.guard import Hook, State
from .hooks.table import HOOKS
from .mapping import prices
from .mapping.attributes import INSTRUMENTATION_SCOPE
from .mapping.instruments import Instruments
from .package import _instruments
from .recording.registry import close_open_sessions
from .version import __version__

logger = logging.getLogger("livekit_otel")


@dataclass
class _Active:
    """Everything one ``instrument()`` call set up, undone by ``uninstrument()``."""

    state: State
    provider: trace.TracerProvider | None
    wrapped: list[Hook] = field(default_factory=list)
    builtin_silenced: bool = False
    builtin_previous: Any = None


class LiveKitAgentsInstrumentor(BaseInstrumentor):
    """Traces every ``AgentSession`` as one trace of nested spans (see ``docs/spans.md``).

    ``instrument(tracer_provider=None, **options)``; options are listed in
    :class:`livekit_otel.config.Options`.
    """

    # BaseInstrumentor is a singleton: the state of the one instrumentation in force
    _active: _Active | None = None

    def instrument(self, **kwargs: Any) -> None:
        """Instrument livekit-agents; raises ``UnsupportedVersionError`` before 1.3.6."""
        compat.check_supported()
        super().instrument(**kwargs)

    def instrumentation_dependencies(self) -> Collection[str]:
        """The livekit-agents releases this instrumentor applies to."""
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        provider = terminal.apply_console(kwargs.pop("tracer_provider", None))
        meter_provider = kwargs.pop("meter_provider", None)
        options = resolve_options(**kwargs)
        prices.table_for(options.prices)  # a bad price raises here, saying what to fix
        meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, meter_provider=meter_provider)
        instruments = Instruments(meter, options.environment)
        state = State(_tracer_from(provider), provider, options, instruments)
        active = _Active(state, provider)
        type(self)._active = active
        compat.load_context_vars()
        _quiet_builtin(active)
        _warn_grpc_to_http_port()
        missing: list[str] = []
        for hook in HOOKS:
            if not hook.exists():
                missing.append(f"{hook.attribute} ({hook.loses})")
                continue
            wrapt.wrap_function_wrapper(hook.module, hook.attribute, hook.factory(state, hook))
            active.wrapped.append(hook)
        if missing:
            logger.warning(
                "livekit-otel could not find these hooks in livekit-agents %s, so these "
                "parts of the trace are missing: %s",
                compat.livekit_version(),
                ", ".join(missing),
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        active = type(self)._active
        type(self)._active = None
        close_open_sessions("instrumentation_removed")
        if active is None:
            return
        for hook in active.wrapped:
            unwrap(*hook.owner())
        if active.builtin_silenced:
            builtin.restore_builtin(active.builtin_previous)

    def set_tracer_provider(self, provider: trace.TracerProvider) -> None:
        """Send the plugin's spans to ``provider`` from the next session on."""
        terminal.apply_console(provider)
        active = type(self)._active
        if active is not None:
            active.provider = active.state.provider = provider
            active.state.tracer = _tracer_from(provider)
            _quiet_builtin(active)


def _quiet_builtin(active: _Active) -> None:
    """Keep LiveKit's built-in spans out of our traces (``builtin_telemetry`` option).

    Done at ``instrument()``, so no built-in span escapes before, between or outside
    sessions. A provider chosen for LiveKit's telemetry by anyone (LiveKit Cloud's
    recording included, which installs its own when a job starts) is left alone.
    """
    mode = active.state.options.builtin_telemetry
    if mode == "keep" or active.builtin_silenced:
        return
    provider = active.provider or trace.get_tracer_provider()
    if mode == "off" or builtin.builtin_follows_global() or builtin.builtin_reaches(provider):
        active.builtin_previous = builtin.silence_builtin()
        active.builtin_silenced = True


def _warn_grpc_to_http_port() -> None:
    """Say so when the global provider's exporter would speak gRPC to an OTLP/HTTP port."""
    endpoint = _grpc_exporter_endpoint(trace.get_tracer_provider())
    if endpoint is not None and endpoint.rstrip("/").endswith(":4318"):
        logger.warning(
            "livekit-otel: the OTLP exporter speaks gRPC to %s, which is the OTLP/HTTP port; "
            "no span will arrive. Set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf (the "
            "opentelemetry-distro default is grpc, on port 4317).",
            endpoint,
        )


def _tracer_from(provider: trace.TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer(INSTRUMENTATION_SCOPE, __version__, tracer_provider=provider)


def set_tracer_provider(provider: trace.TracerProvider, **options: Any) -> None:
    """The plugin's traces go to ``provider`` from now on.

    Instruments livekit-agents first if that is not yet done (``options`` are the
    instrumentor's, see :class:`livekit_otel.config.Options`). Never sets the
    process-global OpenTelemetry provider.
    """
    instrumentor = LiveKitAgentsInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider, **options)
        return
    if options:
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=provider, **options)
        return
    instrumentor.set_tracer_provider(provider)


def _grpc_exporter_endpoint(provider: Any) -> str | None:
    """The endpoint of an OTLP/gRPC span exporter on an SDK provider, if it has one."""
    processor = getattr(provider, "_active_span_processor", None)
    for child in getattr(processor, "_span_processors", ()):
        exporter = getattr(child, "span_exporter", None) or getattr(child, "_exporter", None)
        if exporter is not None and ".grpc" in type(exporter).__module__:
            endpoint = getattr(exporter, "_endpoint", None)
            return str(endpoint) if endpoint else None
    return None


def set_meter_provider(provider: metrics.MeterProvider | None, **options: Any) -> None:
    """The plugin's metrics go to ``provider`` from the next session on.

    ``None`` means the process-global meter provider. Instruments livekit-agents first if
    that is not yet done; with ``options`` (the instrumentor's, see
    :class:`livekit_otel.config.Options`) it instruments again with them, keeping the tracer
    provider in force. Sessions already running keep recording where they started. Never
    sets the process-global OpenTelemetry meter provider.
    """
    instrumentor = LiveKitAgentsInstrumentor()
    active = LiveKitAgentsInstrumentor._active
    if not instrumentor.is_instrumented_by_opentelemetry or active is None:
        instrumentor.instrument(meter_provider=provider, **options)
        return
    if options:
        tracer_provider = active.provider
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=provider, **options)
        return
    meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, meter_provider=provider)
    active.state.instruments = Instruments(meter, active.state.options.environment)


def setup_console(per_turn: bool = False, stream: TextIO | None = None) -> SDKTracerProvider:
    """Print each session's span tree and latency table to the terminal when it ends.

    Beside a real exporter: when livekit-otel already sends its spans to an SDK
    ``TracerProvider`` (``setup_langfuse``, ``setup_otlp``, ``set_tracer_provider``, or
    the global one), the console is added to it. Alone: a new provider with only the
    console, handed to livekit-otel (which instruments livekit-agents if that is not done
    yet). A provider livekit-otel is given afterwards gets the console as well. Returns the
    provider the console is on now. ``per_turn``: also a line per agent turn as it ends.
    ``stream``: where to write (``None``: ``sys.stderr`` at the time of writing).
    """
    terminal.want_console(per_turn, stream)
    active = LiveKitAgentsInstrumentor._active
    current = (active.provider or trace.get_tracer_provider()) if active is not None else None
    if isinstance(current, SDKTracerProvider):
        terminal.attach_console(current, per_turn, stream)
        return current
    provider = SDKTracerProvider()
    terminal.attach_console(provider, per_turn, stream)
    set_tracer_provider(provider)
    return provider
