#!/usr/bin/env python3
"""Screenshot the offline demo's trace in Arize Phoenix: writes docs/phoenix-trace.png.

Usage:
    python scripts/screenshot_demo.py [--out docs/phoenix-trace.png] [--budget-ms 40000]

Steps: start a throw-away Phoenix server on loopback (``tests/support/phoenix.py``, which
installs the pinned Phoenix into ``.venv-phoenix`` when needed), run the offline demo's
scripted call (``SCRIPT`` of ``examples/offline_demo.py``) exported to it with
``setup_otlp``, read the trace back, take a headless Chromium screenshot of it with the
``llm_node`` of the tool-calling turn selected (``scripts/screenshot_phoenix.py``), and
stop the server. Chromium comes from ``scripts/install_chromium.sh``.

The page is captured twice, ``--settle-ms`` of page time apart; unless the two captures
are identical the script fails and the existing PNG is left as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for folder in ("src", "tests", "scripts", "examples"):
    sys.path.insert(0, str(REPO_ROOT / folder))

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import format_trace_id  # noqa: E402
from screenshot_phoenix import (  # noqa: E402
    MIN_PNG_BYTES,
    add_browser_options,
    take_screenshot,
    trace_view_url,
)

from livekit_otel import LiveKitAgentsInstrumentor, setup_otlp  # noqa: E402
from offline_demo import run_demo_call  # noqa: E402
from support.phoenix import PhoenixServer, start_phoenix  # noqa: E402

PROJECT = "livekit-otel-demo"
DEFAULT_OUT = REPO_ROOT / "docs" / "phoenix-trace.png"
Span = dict[str, Any]


def export_demo(server: PhoenixServer) -> tuple[str, int]:
    """Run the demo's scripted call traced into ``server``; return (trace id, span count)."""
    for name in [name for name in os.environ if name.startswith(("OTEL_", "LIVEKIT_OTEL_"))]:
        del os.environ[name]
    provider = setup_otlp(
        server.otlp_traces_endpoint,
        headers={},
        service_name="livekit-otel-demo",
        metrics=False,  # Phoenix takes traces only
        resource_attributes={"openinference.project.name": PROJECT},
    )
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent))
    try:
        asyncio.run(run_demo_call())
        if not provider.force_flush(10_000):
            raise SystemExit("the spans could not be flushed to Phoenix")
    finally:
        LiveKitAgentsInstrumentor().uninstrument()
        provider.shutdown()
    spans = sent.get_finished_spans()
    trace_ids = {span.context.trace_id for span in spans if span.context is not None}
    if len(trace_ids) != 1:
        raise SystemExit(f"expected the demo to make one trace, got {len(trace_ids)}")
    return format_trace_id(trace_ids.pop()), len(spans)


def tool_calling_generation(spans: list[Span]) -> Span:
    """The ``llm_node`` that asked for a tool (its output holds the tool call)."""
    for span in spans:
        if span["name"] == "llm_node" and "tool_calls" in str(
            span["attributes"].get("output.value", "")
        ):
            return span
    raise SystemExit("no llm_node with a tool call in the demo trace")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG path")
    add_browser_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start Phoenix, export the demo, screenshot the trace, stop Phoenix."""
    args = parse_args(argv)
    root_dir = Path(tempfile.mkdtemp(prefix="livekit-otel-screenshot-"))
    try:
        server = start_phoenix(root_dir)
        try:
            print(f"Phoenix ready at {server.base_url} in {server.startup_seconds:.1f} s")
            trace_id, count = export_demo(server)
            spans = server.spans(trace_id, project=PROJECT, expect=count, timeout=30)
            selected = tool_calling_generation(spans)
            url = trace_view_url(server.base_url, trace_id, PROJECT, selected["span_id"])
            started = time.monotonic()
            out = take_screenshot(
                url,
                args.out,
                chromium=args.chromium,
                budget_ms=args.budget_ms,
                settle_ms=args.settle_ms,
                window=args.window,
            )
        finally:
            server.stop()
    finally:
        shutil.rmtree(root_dir, ignore_errors=True)
    size = out.stat().st_size
    print(f"{out} ({size} bytes, {time.monotonic() - started:.1f} s) <- {url}")
    if size < MIN_PNG_BYTES:
        print(f"warning: {out} is small; the page may not have rendered", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
