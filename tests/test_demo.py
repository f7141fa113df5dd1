"""The offline demo pointed at an OTLP backend (as at Arize Phoenix): traces only, in the
project the docs show, and a summary that says truthfully what went where."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, refused_url

from livekit_otel import LiveKitAgentsInstrumentor
from livekit_otel.setup import installed as setup_state

DEMO = Path(__file__).resolve().parent.parent / "examples" / "offline_demo.py"


def _uninstrument() -> None:
    instrumentor = LiveKitAgentsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The demo's module, with no backend variable from the outside; its setup undone after."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_", "LIVEKIT_OTEL_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(setup_state, "_installed", None)
    _uninstrument()
    spec = importlib.util.spec_from_file_location("offline_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    _uninstrument()


async def test_the_demo_sends_phoenix_traces_only_in_the_documented_project(
    demo: ModuleType,
    otlp_receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.url)

    status = await demo.main()

    spans = otlp_receiver.spans
    assert status == 0
    assert spans and {request.path for request in otlp_receiver.requests} == {"/v1/traces"}
    assert {span.resource["openinference.project.name"] for span in spans} == {"livekit-otel-demo"}
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith(f"{len(spans)} spans in 1 trace sent to {otlp_receiver.url}/v1/")
    assert summary.endswith("(Phoenix project: livekit-otel-demo); no metrics sent.")


async def test_the_demo_says_so_when_its_backend_refused_the_spans(
    demo: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", refused_url())

    status = await demo.main()

    assert status == 1
    assert "exporting FAILED" in capsys.readouterr().out.splitlines()[-1]
