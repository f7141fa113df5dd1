"""OpenTelemetry tracing for LiveKit Agents voice sessions.

Every ``AgentSession`` becomes one trace: ``agent_session`` with ``session_start``,
``user_turn`` / ``end_of_turn``, ``agent_turn`` with ``llm_node``, ``function_tool`` and
``tts_node``, and ``session_close``; LiveKit's metrics are copied onto the spans as
``lk.<kind>.<field>`` and each agent turn carries its latency breakdown.

Usage, in the agent's entrypoint::

    from livekit_otel import setup_langfuse

    async def entrypoint(ctx: JobContext) -> None:
        setup_langfuse()  # LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST
        ...

Any OTLP backend (Jaeger, Phoenix, Grafana, Honeycomb, a Collector)::

    setup_otlp("http://localhost:4318")     # or only OTEL_EXPORTER_OTLP_* variables

An existing provider::

    from livekit_otel import LiveKitAgentsInstrumentor
    LiveKitAgentsInstrumentor().instrument(tracer_provider=provider)

or ``opentelemetry-instrument python agent.py start`` with no code change.

Configuration (keyword options of ``instrument``, ``set_tracer_provider`` and the setup
functions' ``instrument_options``; environment variables in brackets):

- ``capture_content`` (``LIVEKIT_OTEL_CAPTURE_CONTENT``): prompts, transcripts, tool
  arguments and results, spoken text; on by default.
- ``redact``: a callable applied to every captured text; ``redact_pii`` is ready made.
- ``max_attribute_length`` (``LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH``): per-attribute limit.
- ``prompt_window`` (``LIVEKIT_OTEL_PROMPT_WINDOW``): at most this many chat items per
  ``llm_node`` prompt (only those new since the previous generation are recorded).
- ``conventions`` (``LIVEKIT_OTEL_CONVENTIONS``): extra attribute families on top of the
  contract's, from ``langfuse``, ``openinference``, ``genai``; default
  ``langfuse,openinference``.
- ``trace_per`` (``LIVEKIT_OTEL_TRACE_PER``): ``session`` (default) or ``turn``.
- ``builtin_telemetry``: ``auto`` (default) keeps LiveKit's own spans out of the trace
  unless an explicit provider was given to ``livekit.agents.telemetry``; ``off``; ``keep``.
- ``user_id``, ``tags``, ``metadata``, ``release``, ``environment``: defaults for every
  session; ``update_session`` changes them for one running session.
"""

from .bootstrap import setup_langfuse, setup_otlp
from .compat import UnsupportedVersionError
from .instrumentor import LiveKitAgentsInstrumentor, set_tracer_provider
from .redaction import redact_pii
from .session import update_session
from .version import __version__

__all__ = [
    "LiveKitAgentsInstrumentor",
    "UnsupportedVersionError",
    "__version__",
    "redact_pii",
    "set_tracer_provider",
    "setup_langfuse",
    "setup_otlp",
    "update_session",
]
