"""``setup_langfuse``: livekit-otel's spans to Langfuse's OTLP endpoint, with Basic auth."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from livekit_otel.audio import runtime as audio_runtime
from livekit_otel.audio.langfuse import LangfuseMedia
from livekit_otel.config import warn_unknown_environment
from livekit_otel.recording.registry import DEFAULT_SHUTDOWN_TIMEOUT
from livekit_otel.setup.endpoints import (
    LANGFUSE_OTEL_PATH,
    LANGFUSE_VARIABLES,
    TRACES_PATH,
    ExportTarget,
    resolve_langfuse_target,
)
from livekit_otel.setup.installed import install, never_failing_a_job
from livekit_otel.setup.settings import setup_options


def setup_langfuse(
    host: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    set_global: bool = False,
    timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    instrument_options: Mapping[str, Any] | None = None,
) -> TracerProvider:
    """Send livekit-otel's spans to Langfuse and return the provider.

    Each argument defaults to its environment variable: ``LANGFUSE_PUBLIC_KEY``,
    ``LANGFUSE_SECRET_KEY``, ``LANGFUSE_BASE_URL`` or ``LANGFUSE_HOST`` (the host falls
    back to ``https://cloud.langfuse.com``). Spans are posted to
    ``{host}/api/public/otel/v1/traces`` with Basic auth; ``OTEL_EXPORTER_OTLP_*``
    variables are neither read for the endpoint or headers nor written. No metrics are
    sent (Langfuse takes none); ``setup_prometheus`` serves them alongside.

    Takes the same options as ``setup_otlp`` (but ``metrics``). Raises ``ValueError``
    naming every missing key, for a host without ``http://``/``https://`` and for swapped
    keys, and for a URL path no receiver serves (``/v1/trace``). A ``LANGFUSE_*`` variable
    close to a known name (``LANGFUSE_HOTS``) is one warning naming the right one; with no
    host given, one INFO line says spans go to Langfuse Cloud. Inside a running LiveKit job
    it logs one ERROR instead and returns ``disabled_provider()``, as ``setup_otlp`` does.
    With the ``audio`` option, the audio is uploaded to the same project through
    Langfuse's media API.
    """

    def build() -> TracerProvider:
        options = setup_options(
            service_name,
            resource_attributes,
            set_global,
            timeout,
            shutdown_timeout,
            instrument_options,
        )
        warn_unknown_environment("LANGFUSE_", LANGFUSE_VARIABLES, only_close=True)
        target = resolve_langfuse_target(host, public_key, secret_key, os.environ)
        # Langfuse's keys; the GenAI keys it reads are the contract's, written anyway
        provider = install(target, options, None, conventions="langfuse")
        _upload_audio_to(target)
        return provider

    return never_failing_a_job("setup_langfuse", build)


def _upload_audio_to(target: ExportTarget) -> None:
    """Audio captured from now on (option ``audio``) is uploaded to this Langfuse project."""
    host = target.url.removesuffix(TRACES_PATH).removesuffix(LANGFUSE_OTEL_PATH)
    authorization = target.headers.get("authorization")
    if authorization:
        audio_runtime.use_langfuse(LangfuseMedia(host, authorization))
