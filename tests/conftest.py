"""Shared fixtures: a local OTLP/HTTP receiver standing in for Langfuse or any backend, a
real Arize Phoenix for the e2e tests, and instrumented in-memory tracing."""

from support.otlp_receiver import otlp_receiver, refused_endpoint  # noqa: F401
from support.phoenix import phoenix  # noqa: F401
from support.tracing import global_tracer_provider, instrument, tracing  # noqa: F401
