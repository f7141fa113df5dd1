"""Development support for livekit-otel: never imported by a user's agent, never shipped.

- ``livekit_otel_dev.scripted``: a real ``AgentSession`` driven offline by scripted
  STT, LLM, TTS and VAD components, for the tests, the demo and the benchmark.
- ``livekit_otel_dev.console``: a finished trace as a terminal tree and latency table.
- ``livekit_otel_dev.jsonfile``: the OTLP/JSON-lines file exporter (re-exported from livekit_otel).
- ``livekit_otel_dev.otlp_receiver``: a local OTLP/HTTP receiver that decodes what it gets.

It has no stability promise; ``make install`` installs it beside the package.
"""
