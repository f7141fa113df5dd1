"""OpenTelemetry tracing and metrics for LiveKit Agents voice sessions.

Every ``AgentSession`` becomes one trace: ``agent_session`` with ``session_start``,
``user_turn`` / ``end_of_turn``, ``agent_turn`` with ``llm_node``, ``function_tool`` and
``tts_node``, and ``session_close``; LiveKit's metrics are copied onto the spans as
``lk.<kind>.<field>`` and each agent turn carries its latency breakdown. OpenTelemetry
metrics (perceived latency and its parts, GenAI operation duration and token usage, turns,
TTS characters, STT seconds) are recorded as each turn ends (see ``docs/metrics.md``).

Usage, at module level in the agent's file (a bad setting then fails the deploy, and the
provider is still flushed at the end of every job)::

    from livekit_otel import setup_langfuse

    setup_langfuse()  # LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST

    async def entrypoint(ctx: JobContext) -> None:
        ...

Any OTLP backend (Jaeger, Phoenix, Grafana, Honeycomb, a Collector); metrics go to the
same backend's ``/v1/metrics`` unless ``metrics=False`` or ``OTEL_METRICS_EXPORTER=none``::

    setup_otlp("http://localhost:4318")     # or only OTEL_EXPORTER_OTLP_* variables
    installed_meter_provider()              # the MeterProvider it built

A Prometheus endpoint (the ``prometheus`` extra: ``pip install -e '.[prometheus]'`` in a
clone of livekit-otel; it serves the metrics of its own process, so run LiveKit jobs in
threads or use OTLP to a Collector)::

    setup_prometheus(port=9464)             # http://127.0.0.1:9464/metrics

A file of OTLP/JSON lines, no backend (read it with ``python -m livekit_otel.view FILE``)::

    setup_file("traces/agent.jsonl")        # or LIVEKIT_OTEL_FILE=traces/agent.jsonl

An existing provider::

    from livekit_otel import LiveKitAgentsInstrumentor
    LiveKitAgentsInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)

or ``opentelemetry-instrument python agent.py start`` with no code change.

Configuration (keyword options of ``instrument``, ``set_tracer_provider``,
``set_meter_provider`` and the setup functions' ``instrument_options``; environment
variables in brackets):

- ``capture_content`` (``LIVEKIT_OTEL_CAPTURE_CONTENT``): prompts, transcripts, tool
  arguments and results, spoken text; on by default.
- ``redact``: a callable applied to every captured text; ``redact_pii`` is ready made.
- ``max_attribute_length`` (``LIVEKIT_OTEL_MAX_ATTRIBUTE_LENGTH``): per-attribute limit.
- ``prompt_window`` (``LIVEKIT_OTEL_PROMPT_WINDOW``): at most this many chat items per
  ``llm_node`` prompt, besides the system instructions.
- ``conventions`` (``LIVEKIT_OTEL_CONVENTIONS``): extra attribute families on top of the
  contract's, from ``langfuse``, ``openinference``, ``genai``; by default the backend's
  (``langfuse`` for ``setup_langfuse``, ``openinference`` for ``setup_otlp`` to Phoenix,
  ``genai`` for another OTLP backend), ``langfuse,openinference`` without a setup.
- ``trace_per`` (``LIVEKIT_OTEL_TRACE_PER``): ``session`` (default) or ``turn``.
- ``builtin_telemetry``: ``auto`` (default) keeps LiveKit's own spans out of the trace
  unless an explicit provider was given to ``livekit.agents.telemetry``; ``off``; ``keep``.
- ``user_id``, ``tags``, ``metadata``, ``release``, ``environment``: defaults for every
  session; ``update_session`` changes them for one running session.
"""

from .compat import UnsupportedVersionError
from .instrumentor import (
    LiveKitAgentsInstrumentor,
    set_meter_provider,
    set_tracer_provider,
    setup_console,
)
from .mapping.redaction import redact_pii
from .recording.updates import update_session
from .setup.file import setup_file
from .setup.installed import installed_meter_provider
from .setup.langfuse import setup_langfuse
from .setup.otlp import setup_otlp
from .setup.prometheus import setup_prometheus
from .terminal import attach_console
from .version import __version__

__all__ = [
    "LiveKitAgentsInstrumentor",
    "UnsupportedVersionError",
    "__version__",
    "attach_console",
    "installed_meter_provider",
    "redact_pii",
    "set_meter_provider",
    "set_tracer_provider",
    "setup_console",
    "setup_file",
    "setup_langfuse",
    "setup_otlp",
    "setup_prometheus",
    "update_session",
]
