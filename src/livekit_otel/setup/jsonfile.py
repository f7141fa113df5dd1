"""Finished spans appended to a file as OTLP/JSON lines (``setup_file``'s exporter).

The file follows the OpenTelemetry specification's OTLP/JSON encoding (the protobuf JSON
mapping with OTLP's exceptions), one ``ExportTraceServiceRequest`` per line, as the
OpenTelemetry Collector's ``otlpjsonfile`` receiver reads it:

- ``traceId``, ``spanId`` and ``parentSpanId`` (on spans and on links) are lowercase hex
  strings, not the base64 of the generic protobuf mapping;
- enum values (``kind``, ``status.code``) are integers, never names;
- keys are lowerCamelCase (``startTimeUnixNano``); 64-bit integers are decimal strings,
  as the protobuf JSON mapping writes them; fields at their default value are left out.

Each batch is one ``write`` on a file opened for appending, so job processes that share the
file add whole lines.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

logger = logging.getLogger(__name__)

# the OTLP/JSON fields that hold a trace or span id, written as hex instead of base64
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def encode_otlp_json(spans: Sequence[ReadableSpan]) -> str:
    """``spans`` as one OTLP/JSON ``ExportTraceServiceRequest``, on a single line."""
    request = MessageToDict(
        encode_spans(spans),
        use_integers_for_enums=True,
        preserving_proto_field_name=False,
    )
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                _ids_to_hex(span)
                for link in span.get("links", ()):
                    _ids_to_hex(link)
    return json.dumps(request, ensure_ascii=False, separators=(",", ":"))


def _ids_to_hex(item: dict[str, Any]) -> None:
    """Rewrite the base64 ids the protobuf mapping produced as OTLP's lowercase hex."""
    for key in _ID_FIELDS:
        if key in item:
            item[key] = base64.b64decode(item[key]).hex()


def _append(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` in one ``write`` where the system allows (``O_APPEND``)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


class OtlpJsonFileExporter(SpanExporter):
    """Appends each export batch, as one OTLP/JSON ``ExportTraceServiceRequest`` line, to a file.

    Nothing is kept after a batch is written: the file is the only copy. A batch that
    cannot be written is logged as an error on this module's logger and reported as a
    failed export; after ``shutdown`` every export fails.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one batch to the file as a line of OTLP/JSON."""
        if self._shut_down:
            logger.error("Failed to export span batch to %s: the exporter is shut down", self.path)
            return SpanExportResult.FAILURE
        try:
            line = (encode_otlp_json(spans) + "\n").encode("utf-8")
            with self._lock:
                _append(self.path, line)
        except (OSError, ValueError, TypeError) as error:
            logger.error(
                "Failed to export span batch to %s: %s: %s", self.path, type(error).__name__, error
            )
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Refuse later batches; there is nothing to release, each export closes the file."""
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Every batch is on disk when ``export`` returns."""
        return True
