"""Pytest fixtures around the development kit's OTLP/HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit_otel_dev.otlp_receiver import (  # noqa: F401
    OtlpReceiver,
    ReceivedEvent,
    ReceivedMetric,
    ReceivedPoint,
    ReceivedRequest,
    ReceivedSpan,
    Reply,
    refused_url,
)


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A started OTLP/HTTP receiver, stopped after the test."""
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def refused_endpoint() -> str:
    """A base URL where nothing listens."""
    return refused_url()
