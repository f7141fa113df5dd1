"""Shared fixtures: a local OTLP/HTTP receiver standing in for Langfuse or any backend, a
real Arize Phoenix for the e2e tests, instrumented in-memory tracing, and the setup tests'
fake LiveKit job and global providers."""

from support.otlp_receiver import otlp_receiver, refused_endpoint  # noqa: F401
from support.phoenix import phoenix  # noqa: F401
from support.setup_fixtures import (  # noqa: F401
    global_meter_provider,
    global_tracer_provider_unset,
    in_job,
)
from support.tracing import global_tracer_provider, instrument, tracing  # noqa: F401
