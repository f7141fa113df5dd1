"""Every Python snippet in README.md and docs/*.md runs as it is written.

Each ```python block is saved to a file and run in a Python process of its own, as a
module (`runpy.run_path(..., run_name="snippet")`): its imports and module-level code run
(as when LiveKit's worker loads an agent's file), its `if __name__ == "__main__":` block (a
worker's command line, which needs a LiveKit server) does not. Nothing leaves the machine:
the process sends every HTTP request it makes to a local OTLP receiver, whatever host the
snippet names (the path is kept, so a wrong path still gets the receiver's 404), refuses any
other connection that is not to the loopback, and finds its Langfuse and OTLP settings in
the environment pointing at that receiver.

A block right after an HTML comment `<!-- snippet: skip (why) -->` is not run; the reason is
required. Keep such blocks rare: a snippet that cannot run as written usually lacks an import.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPET_TIMEOUT_S = 120.0
"""Room for a scripted call in a snippet on a busy machine (one takes a few seconds)."""

_BLOCK = re.compile(r"^```python[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_SKIP = re.compile(r"<!--\s*snippet:\s*skip\b(?P<why>[^>]*?)-->\s*$")

_RUNNER = """
import runpy, socket, sys, urllib.parse
import requests

receiver = urllib.parse.urlsplit(sys.argv[2])
send = requests.Session.send

def to_receiver(self, request, **kwargs):
    named = urllib.parse.urlsplit(request.url)
    request.headers["X-Snippet-Host"] = named.netloc
    request.url = urllib.parse.urlunsplit(
        (receiver.scheme, receiver.netloc, named.path, named.query, "")
    )
    return send(self, request, **kwargs)

connect = socket.socket.connect

def loopback_only(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(f"the docs test allows no connection to {host}")
    return connect(self, address)

requests.Session.send = to_receiver
socket.socket.connect = loopback_only
runpy.run_path(sys.argv[1], run_name="snippet")
"""


@dataclass(frozen=True)
class Snippet:
    """One ```python block of a document."""

    document: Path
    line: int
    """The line of its opening fence, 1-based."""
    code: str
    skip_reason: str | None
    """`None` unless the block is marked `<!-- snippet: skip (why) -->`; then the why."""

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def snippets_of(document: Path) -> Iterator[Snippet]:
    """The Python blocks of one Markdown document, in order."""
    text = document.read_text(encoding="utf-8")
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _SKIP.search(before)
        reason = marker.group("why").strip(" ()") if marker else None
        yield Snippet(document, line, match.group("code"), reason)


SNIPPETS = [snippet for document in DOCUMENTS for snippet in snippets_of(document)]


def test_the_documents_have_python_snippets() -> None:
    assert len(SNIPPETS) >= 10, [s.name for s in SNIPPETS]


def test_every_skipped_snippet_says_why() -> None:
    unexplained = [s.name for s in SNIPPETS if s.skip_reason is not None and not s.skip_reason]
    assert unexplained == []


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    started = OtlpReceiver().start()
    try:
        yield started
    finally:
        started.stop()


def snippet_environment(receiver: OtlpReceiver) -> dict[str, str]:
    """The test's own environment (its import path made absolute), with every backend
    setting a snippet may read pointing at the receiver."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGFUSE_", "OTEL_", "LIVEKIT_OTEL_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join(str(Path(p).resolve()) for p in sys.path if p),
        LANGFUSE_PUBLIC_KEY="pk-lf-docs-test",
        LANGFUSE_SECRET_KEY="sk-lf-docs-test",
        LANGFUSE_HOST=receiver.url,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="docs-snippet",
        HONEYCOMB_API_KEY="docs-test-key",
    )
    return env


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.name)
def test_the_snippet_runs_as_written(
    snippet: Snippet, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    if snippet.skip_reason is not None:
        pytest.skip(f"marked in the document: {snippet.skip_reason}")
    source = tmp_path / "snippet.py"
    source.write_text(snippet.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(source), receiver.url],
        cwd=tmp_path,
        env=snippet_environment(receiver),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{snippet.name} failed:\n{snippet.code}\n---\n{output}"
    assert "Traceback" not in output and " ERROR " not in output, output
    refused = [(r.path, r.status) for r in receiver.requests if r.status != 200]
    assert refused == [], f"{snippet.name} exported to a wrong place: {refused}"
