"""The embedded default backend: finished spans written as OTLP JSON files in a folder."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class OtlpJsonFileExporter(SpanExporter):
    """Appends each export batch, as one OTLP/JSON ``ExportTraceServiceRequest`` line, to a file.

    The file is JSON Lines in the OTLP file-exporter format, which the OpenTelemetry
    Collector's ``otlpjsonfile`` receiver and most trace viewers read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write one batch; keep the spans for the terminal summary."""
        line = MessageToJson(encode_spans(spans), indent=None)
        with self._lock, self.path.open("a", encoding="utf-8") as output:
            output.write(line.replace("\n", "") + "\n")
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release: each export opens and closes the file."""
