"""Read an OTLP/JSON-lines trace file back as the terminal console shows a session.

Usage::

    python -m livekit_otel.view traces.jsonl [more.jsonl ...] [--session ID] [--ascii]

For each session in the files (spans grouped by ``session.id``, else by trace id), in the
order the sessions started: the span tree with durations and the latency table (measured
latency, its six parts, LiveKit's formula), as ``setup_console()`` prints them when a
session ends. It reads what ``setup_file`` writes, what the offline demo writes, and any
file in the OTLP/JSON encoding with one ``ExportTraceServiceRequest`` per line (the
OpenTelemetry Collector's ``file`` exporter writes that too). A line that is not OTLP/JSON
is reported with its number on standard error and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode

from .mapping import attributes as attr
from .terminal import SpanSummary, heard_turns, render_table, render_tree, summarize

_ASCII_BOX = {"tee": "|- ", "last": "`- ", "bar": "|  ", "gap": "   "}


@dataclass
class Session:
    """The spans of one session found in the files."""

    key: str
    spans: list[SpanSummary] = field(default_factory=list)

    @property
    def start(self) -> int:
        """When the session's first span started (ns since the epoch)."""
        return min((span.start for span in self.spans), default=0)


def read_spans(lines: Iterable[str], errors: list[str], source: str = "") -> Iterator[ReadableSpan]:
    """The spans of OTLP/JSON lines; a line that cannot be read adds a message to
    ``errors`` (with ``source`` and its number) and is skipped."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            yield from _spans_of_request(request)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            errors.append(f"{source}:{number}: not an OTLP/JSON line ({type(error).__name__})")


def _spans_of_request(request: Mapping[str, Any]) -> Iterator[ReadableSpan]:
    for resource_spans in request.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            scope = scope_spans.get("scope") or {}
            instrumentation_scope = InstrumentationScope(
                str(scope.get("name", "")), scope.get("version") or None
            )
            for span in scope_spans.get("spans", ()):
                yield _span(span, instrumentation_scope)


def _span(data: Mapping[str, Any], scope: InstrumentationScope) -> ReadableSpan:
    """One OTLP/JSON span as a finished SDK span (ids in hex, times as decimal strings)."""
    trace_id = int(data["traceId"], 16)
    parent_hex = data.get("parentSpanId") or ""
    parent = SpanContext(trace_id, int(parent_hex, 16), is_remote=False) if parent_hex else None
    status = data.get("status") or {}
    return ReadableSpan(
        name=str(data.get("name", "")),
        context=SpanContext(trace_id, int(data["spanId"], 16), is_remote=False),
        parent=parent,
        attributes=_attributes(data.get("attributes", ())),
        start_time=int(data.get("startTimeUnixNano", 0)),
        end_time=int(data.get("endTimeUnixNano", 0)),
        status=Status(StatusCode(int(status.get("code", 0))), status.get("message") or None),
        instrumentation_scope=scope,
    )


def _attributes(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {str(entry["key"]): _value(entry.get("value") or {}) for entry in entries}


def _value(value: Mapping[str, Any]) -> Any:
    """An OTLP ``AnyValue`` as a Python value (64-bit integers come as decimal strings)."""
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return tuple(_value(item) for item in value["arrayValue"].get("values", ()))
    if "kvlistValue" in value:
        return json.dumps(_attributes(value["kvlistValue"].get("values", ())))
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None


def sessions(spans: Iterable[ReadableSpan]) -> list[Session]:
    """The spans grouped by session id (else trace id), sessions in the order they started."""
    found: dict[str, Session] = {}
    for span in spans:
        key = (span.attributes or {}).get(attr.SESSION_ID)
        if not isinstance(key, str):
            trace_id = span.context.trace_id if span.context is not None else 0
            key = f"trace {trace_id:032x}"
        found.setdefault(key, Session(key)).spans.append(summarize(span))
    return sorted(found.values(), key=lambda session: session.start)


def render_session(session: Session, box: Mapping[str, str] | None = None) -> str:
    """One session as the console prints it: a header, the span tree, the latency table."""
    lines = [f"livekit-otel: session {session.key}, {len(session.spans)} spans", ""]
    lines.append(render_tree(session.spans) if box is None else render_tree(session.spans, box))
    lines.extend(("", render_table(heard_turns(session.spans)), ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, output: TextIO | None = None) -> int:
    """Print every session of the files; 0 when every line was read, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m livekit_otel.view",
        description="Show the sessions of OTLP/JSON trace files as span trees and latency tables.",
    )
    parser.add_argument("files", nargs="+", type=Path, help="OTLP/JSON-lines files")
    parser.add_argument("--session", help="only the session with this id")
    parser.add_argument("--ascii", action="store_true", help="draw the tree with ASCII only")
    arguments = parser.parse_args(argv)
    out = output if output is not None else sys.stdout
    errors: list[str] = []
    spans: list[ReadableSpan] = []
    for path in arguments.files:
        try:
            with path.open(encoding="utf-8") as lines:
                spans.extend(read_spans(lines, errors, str(path)))
        except OSError as error:
            errors.append(f"{path}: cannot be read ({error.strerror or type(error).__name__})")
    found = [s for s in sessions(spans) if arguments.session in (None, s.key)]
    box = _ASCII_BOX if arguments.ascii or not _encodable(out) else None
    for session in found:
        out.write(render_session(session, box) + "\n")
    if not found:
        out.write("no session found\n")
    for message in errors:
        print(message, file=sys.stderr)
    return 1 if errors else 0


def _encodable(stream: TextIO) -> bool:
    try:
        "├─└│".encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeError, LookupError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
