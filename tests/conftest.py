"""Shared fixtures: a local OTLP/HTTP receiver and scripted offline sessions."""
