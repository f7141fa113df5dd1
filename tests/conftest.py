"""Shared fixtures: a local OTLP/HTTP receiver standing in for Langfuse or any backend."""

from support.otlp_receiver import otlp_receiver, refused_endpoint  # noqa: F401
