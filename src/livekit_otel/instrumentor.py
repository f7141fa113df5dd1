"""``LiveKitAgentsInstrumentor``: the wrap table, and where the plugin's spans go."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

from . import compat, wrappers
from .attributes import INSTRUMENTATION_SCOPE
from .config import resolve_options
from .lifecycle import close_open_sessions, register_flush_on_shutdown
from .package import _instruments
from .version import __version__

logger = logging.getLogger("livekit_otel")

# (hook, wrapper factory): the whole of what livekit-otel patches
WRAP_TABLE = (
    (compat.SESSION_START, wrappers.session_start),
    (compat.SESSION_CLOSE, wrappers.session_close),
    (compat.SESSION_EMIT, wrappers.session_emit),
    (compat.END_OF_TURN, wrappers.end_of_turn),
    (compat.LLM_INFERENCE, wrappers.llm_inference),
    (compat.TTS_INFERENCE, wrappers.tts_inference),
    (compat.TOOL_EXECUTIONS, wrappers.tool_executions),
)


class LiveKitAgentsInstrumentor(BaseInstrumentor):
    """Traces every ``AgentSession`` as one trace of nested spans (see ``docs/spans.md``).

    ``instrument(tracer_provider=None, **options)``; options are listed in
    :class:`livekit_otel.config.Options`.
    """

    _state: wrappers.State | None = None
    _wrapped: list[compat.Hook] = []
    _silenced_builtin: Any = None
    _builtin_was_silenced = False

    def instrument(self, **kwargs: Any) -> None:
        """Instrument livekit-agents; raises ``UnsupportedVersionError`` before 1.3.6."""
        compat.check_supported()
        super().instrument(**kwargs)

    def instrumentation_dependencies(self) -> Collection[str]:
        """The livekit-agents releases this instrumentor applies to."""
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        provider = kwargs.pop("tracer_provider", None)
        kwargs.pop("meter_provider", None)
        options = resolve_options(**kwargs)
        state = wrappers.State(_tracer_from(provider), options)
        state.on_session_start = self._on_session_start
        cls = type(self)
        cls._state = state
        cls._provider = provider
        compat.load_context_vars()
        wrapped: list[compat.Hook] = []
        missing: list[str] = []
        for hook, factory in WRAP_TABLE:
            if not hook.exists():
                missing.append(f"{hook.attribute} ({hook.feature})")
                continue
            wrapt.wrap_function_wrapper(hook.module, hook.attribute, factory(state))
            wrapped.append(hook)
        cls._wrapped = wrapped
        if missing:
            logger.warning(
                "livekit-otel could not find these hooks in livekit-agents %s, so these "
                "parts of the trace are missing: %s",
                compat.livekit_version(),
                ", ".join(missing),
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        cls = type(self)
        close_open_sessions("instrumentation_removed")
        for hook in cls._wrapped:
            module = __import__(hook.module, fromlist=["_"])
            owner_path, _, name = hook.attribute.rpartition(".")
            owner: Any = module
            for part in filter(None, owner_path.split(".")):
                owner = getattr(owner, part)
            unwrap(owner, name)
        cls._wrapped = []
        cls._state = None
        if cls._builtin_was_silenced:
            compat.restore_builtin(cls._silenced_builtin)
            cls._builtin_was_silenced = False
            cls._silenced_builtin = None

    _provider: Any = None

    def _on_session_start(self) -> None:
        self._quiet_builtin()
        provider = type(self)._provider or trace.get_tracer_provider()
        if isinstance(provider, SDKTracerProvider):
            # a provider built outside the job (at import time) still gets flushed at its end
            register_flush_on_shutdown(provider)

    def _quiet_builtin(self) -> None:
        """Keep LiveKit's built-in spans out of our trace (``builtin_telemetry`` option)."""
        cls = type(self)
        state = cls._state
        if state is None or cls._builtin_was_silenced:
            return
        mode = state.options.builtin_telemetry
        if mode == "keep":
            return
        provider = cls._provider or trace.get_tracer_provider()
        # on LiveKit Cloud with recording on, LiveKit installs its own provider: leave it be
        implicit = compat.builtin_follows_global() and not compat.cloud_recording()
        if mode == "off" or implicit or compat.builtin_reaches(provider):
            cls._silenced_builtin = compat.silence_builtin()
            cls._builtin_was_silenced = True

    def set_tracer_provider(self, provider: trace.TracerProvider) -> None:
        """Send the plugin's spans to ``provider`` from the next session on."""
        cls = type(self)
        cls._provider = provider
        if cls._state is not None:
            cls._state.tracer = _tracer_from(provider)


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
