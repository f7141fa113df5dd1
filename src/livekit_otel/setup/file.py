"""``setup_file``: livekit-otel's spans written to a file as OTLP/JSON lines, no backend needed.

Read the file back with ``python -m livekit_otel.view FILE`` (each session's span tree and
latency table, as the terminal console prints them), or with the OpenTelemetry Collector's
``otlpjsonfile`` receiver, which reads this format.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.types import AttributeValue

from livekit_otel.recording.registry import DEFAULT_SHUTDOWN_TIMEOUT
from livekit_otel.setup.endpoints import ExportTarget
from livekit_otel.setup.installed import install, never_failing_a_job
from livekit_otel.setup.jsonfile import OtlpJsonFileExporter
from livekit_otel.setup.settings import setup_options

logger = logging.getLogger(__name__)

ENV_FILE = "LIVEKIT_OTEL_FILE"
DEFAULT_FILE = "livekit-otel-traces.jsonl"


def setup_file(
    path: str | os.PathLike[str] | None = None,
    *,
    service_name: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    set_global: bool = False,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    instrument_options: Mapping[str, Any] | None = None,
) -> TracerProvider:
    """Write livekit-otel's spans to ``path`` as OTLP/JSON lines and return the provider.

    ``path`` defaults to the ``LIVEKIT_OTEL_FILE`` variable, else
    ``livekit-otel-traces.jsonl`` in the working directory (one INFO line says where).
    Each line is one ``ExportTraceServiceRequest`` in the OTLP/JSON encoding, appended
    (the file is never truncated; its folder is created). Spans are written in batches by
    a background thread, and flushed at LiveKit job shutdown as the other setup functions
    do; LiveKit's job processes may share one file, each batch being one appended write.
    No metrics are written.

    Read it with ``python -m livekit_otel.view FILE``, or the OpenTelemetry Collector's
    ``otlpjsonfile`` receiver. Takes the options of ``setup_otlp`` (but ``timeout`` and
    ``metrics``). Raises ``ValueError`` for a path that is not a file name or whose folder
    cannot be created; inside a running LiveKit job it logs one ERROR instead and returns
    a provider that records nothing, as the other setup functions do.
    """

    def build() -> TracerProvider:
        options = setup_options(
            service_name,
            resource_attributes,
            set_global,
            None,
            shutdown_timeout,
            instrument_options,
        )
        file = _resolve_path(path)
        target = ExportTarget(url=file.as_uri(), headers=MappingProxyType({}))
        return install(
            target, options, None, lambda _, resource, __: _file_provider(file, resource)
        )

    return never_failing_a_job("setup_file", build)


def _resolve_path(path: object) -> Path:
    """The file to write: the argument, else ``LIVEKIT_OTEL_FILE``, else the default."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"path must be a file name such as 'traces/agent.jsonl', not a {type(path).__name__}"
        )
    source = "path="
    if path is None or not str(path).strip():
        path, source = os.environ.get(ENV_FILE, "").strip(), ENV_FILE
    if not path:
        path, source = DEFAULT_FILE, "the default file"
        logger.info(
            "livekit-otel: no path given (path= or %s), so spans are written to %s",
            ENV_FILE,
            Path(DEFAULT_FILE).resolve(),
        )
    file = Path(os.fspath(path)).expanduser().resolve()
    if file.is_dir():
        raise ValueError(f"{source} names a folder ({file}); give a file name inside it")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"{source}: cannot create the folder {file.parent} ({type(error).__name__})"
        ) from None
    return file


def _file_provider(file: Path, resource: Resource) -> TracerProvider:
    """A provider whose batch processor appends to ``file``."""
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileExporter(file)))
    return provider
