#!/usr/bin/env python3
"""Take a PNG screenshot of one trace in a running Arize Phoenix UI with headless Chromium.

Usage:
    python scripts/screenshot_phoenix.py --base-url http://127.0.0.1:6006 \\
        --trace-id 0af7651916cd43dd8448eb211c80319c --out /tmp/trace.png \\
        [--project default] [--span-id b7ad6b7169203331] [--budget-ms 40000]

The page shown is the project's trace list with the trace's detail pane open,
`/projects/<project GlobalID>/traces/<trace id>`; the project's GlobalID is read from
`GET /v1/projects/<name>`. If the project cannot be found, Phoenix's own redirect page
`/redirects/traces/<trace id>` is used, which looks the project up in the browser.

Chromium is Debian's (`scripts/install_chromium.sh` installs it). It runs with a fresh
profile in a temporary directory and with background networking switched off, so it only
talks to the Phoenix server. Uses the standard library only.

The page must have settled: the page is captured twice, after `--budget-ms` and after
`--budget-ms` + `--settle-ms` of page time, and the two pictures must be identical, or the
script fails (a pane still sliding in, a spinner, a chart still drawing) and leaves `--out`
as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_BUDGET_MS = 40_000
"""Virtual ms the single-page app gets before the first capture (it settles by about 20 s)."""
DEFAULT_SETTLE_MS = 5_000
"""Page time between the two captures that must be identical."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 10_000
"""A blank page at 1600x1000 compresses to a few kB; a rendered trace view is far larger."""


def _get_json(url: str) -> Any | None:
    """The JSON body of a GET to Phoenix's REST API, or None when it answers 404."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def project_global_id(base_url: str, project: str) -> str | None:
    """Return the GlobalID of `project` via the REST API, or None if it does not exist."""
    body = _get_json(f"{base_url}/v1/projects/{urllib.parse.quote(project, safe='')}")
    if body is None:
        return None
    project_id: str = body["data"]["id"]
    return project_id


def span_global_id(base_url: str, project: str, trace_id: str, span_id: str) -> str | None:
    """Return Phoenix's GlobalID of the span with OpenTelemetry id `span_id`, if stored."""
    query = urllib.parse.urlencode({"trace_id": trace_id, "span_id": span_id})
    body = _get_json(f"{base_url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?{query}")
    if body is None:
        return None
    for span in body["data"]:
        node_id: str = span["id"]
        return node_id
    return None


def trace_view_url(base_url: str, trace_id: str, project: str, span_id: str | None = None) -> str:
    """Return the UI URL that opens `trace_id` inside its project's trace list.

    With `span_id` (16 hex digits) that span is selected in the trace tree, so the detail
    pane shows its input, output and attributes instead of the root span's.
    """
    project_id = project_global_id(base_url, project)
    if project_id is None:
        return f"{base_url}/redirects/traces/{trace_id}"
    url = f"{base_url}/projects/{project_id}/traces/{trace_id}"
    if span_id:
        node_id = span_global_id(base_url, project, trace_id, span_id)
        if node_id is None:
            raise SystemExit(f"span {span_id} of trace {trace_id} not found in {project!r}")
        url += "?" + urllib.parse.urlencode({"selectedSpanNodeId": node_id})
    return url


def chromium_command(
    chromium: str, url: str, out: Path, profile_dir: Path, budget_ms: int, window: str
) -> list[str]:
    """Build the headless Chromium command line that writes a screenshot of `url` to `out`."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--hide-scrollbars",
        # without these the detail pane's slide-in runs on the compositor's real clock, not
        # the virtual one, and the picture catches it half way: no motion, and every
        # animation frame drawn on virtual time
        "--force-prefers-reduced-motion",
        "--run-all-compositor-stages-before-draw",
        "--disable-threaded-animation",
        f"--user-data-dir={profile_dir}",
        f"--window-size={window}",
        f"--screenshot={out}",
        f"--virtual-time-budget={budget_ms}",
        url,
    ]


class UnsettledPageError(SystemExit):
    """The two captures of the page differ: it was still changing."""


def _capture(
    chromium: str, url: str, out: Path, budget_ms: int, window: str, timeout_s: float
) -> None:
    """One headless Chromium run that writes a PNG of `url` after `budget_ms` of page time."""
    profile_dir = Path(tempfile.mkdtemp(prefix="livekit-otel-chromium-"))
    try:
        command = chromium_command(chromium, url, out, profile_dir, budget_ms, window)
        proc = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise SystemExit(f"chromium failed (exit {proc.returncode}), no {out}:\n{tail}")
    with out.open("rb") as png:
        if png.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise SystemExit(f"{out} is not a PNG")


def take_screenshot(
    url: str,
    out: Path,
    *,
    chromium: str = DEFAULT_CHROMIUM,
    budget_ms: int = DEFAULT_BUDGET_MS,
    settle_ms: int = DEFAULT_SETTLE_MS,
    window: str = "1600,1000",
    timeout_s: float = 120.0,
) -> Path:
    """Screenshot `url` into `out` once the page has settled; return `out`.

    `budget_ms` is Chromium's virtual time budget: how much page time (timers, network
    waits) the single-page app gets before the picture is taken. A second capture is taken
    after `settle_ms` more; unless the two are identical, `UnsettledPageError` is raised
    and `out` is left untouched.
    """
    if not Path(chromium).is_file():
        raise SystemExit(f"{chromium} not found: run scripts/install_chromium.sh first")
    if settle_ms <= 0:
        raise SystemExit("--settle-ms must be a positive number of milliseconds")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="livekit-otel-screenshot-"))
    try:
        first, second = work / "first.png", work / "second.png"
        _capture(chromium, url, first, budget_ms, window, timeout_s)
        _capture(chromium, url, second, budget_ms + settle_ms, window, timeout_s)
        if first.read_bytes() != second.read_bytes():
            raise UnsettledPageError(
                f"the page was still changing between {budget_ms} and "
                f"{budget_ms + settle_ms} ms of page time (the two captures differ), so no "
                f"screenshot was written to {out}; try a larger --budget-ms"
            )
        shutil.move(str(second), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--base-url", required=True, help="Phoenix base URL, e.g. http://127.0.0.1:6006"
    )
    parser.add_argument("--trace-id", required=True, help="trace id, 32 hex digits")
    parser.add_argument("--project", default="default", help="Phoenix project name")
    parser.add_argument("--span-id", help="select this span (16 hex digits) in the trace tree")
    parser.add_argument("--out", type=Path, default=Path("phoenix-trace.png"), help="PNG path")
    add_browser_options(parser)
    return parser.parse_args(argv)


def add_browser_options(parser: argparse.ArgumentParser) -> None:
    """The headless Chromium options both screenshot scripts take."""
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM, help="Chromium executable")
    parser.add_argument(
        "--budget-ms",
        type=int,
        default=DEFAULT_BUDGET_MS,
        help="virtual time budget the page gets before the screenshot",
    )
    parser.add_argument(
        "--settle-ms",
        type=int,
        default=DEFAULT_SETTLE_MS,
        help="page time between the two captures, which must be identical",
    )
    parser.add_argument("--window", default="1600,1000", help="window size WIDTH,HEIGHT")


def main(argv: list[str] | None = None) -> int:
    """Resolve the trace URL, take the screenshot and print where it went."""
    args = parse_args(argv)
    base_url = args.base_url.rstrip("/")
    trace_id = args.trace_id.lower()
    span_id = args.span_id.lower() if args.span_id else None
    url = trace_view_url(base_url, trace_id, args.project, span_id)
    started = time.monotonic()
    out = take_screenshot(
        url,
        args.out,
        chromium=args.chromium,
        budget_ms=args.budget_ms,
        settle_ms=args.settle_ms,
        window=args.window,
    )
    size = out.stat().st_size
    print(f"{out} ({size} bytes, {time.monotonic() - started:.1f}s) <- {url}")
    if size < MIN_PNG_BYTES:
        print(f"warning: {out} is small; the page may not have rendered", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
