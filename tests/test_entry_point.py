"""Zero-code tracing: ``opentelemetry-instrument python agent.py`` finds and uses livekit-otel.

The instrumentor is registered under the ``opentelemetry_instrumentor`` entry point, so
OpenTelemetry's auto-instrumentation loads it; a script that only runs an AgentSession,
with nothing but ``OTEL_*`` variables set, then sends its trace to an OTLP/HTTP receiver.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from livekit_otel_dev.otlp_receiver import OtlpReceiver, ReceivedSpan

from livekit_otel import LiveKitAgentsInstrumentor
from support.shapes import tts_nodes_per_reply

GROUP = "opentelemetry_instrumentor"
SERVICE = "entry-point-agent"

AGENT_SCRIPT = textwrap.dedent(
    """
    import asyncio

    from livekit.agents.telemetry import traces
    from livekit_otel_dev.scripted import ToolCall, UserTurn, run_scripted_session

    turns = [
        UserTurn("hello there"),
        UserTurn("weather in Paris?", reply=ToolCall("lookup_weather", {"location": "Paris"})),
    ]
    # LiveKit's own spans around a job, before and after its session
    with traces.tracer.start_as_current_span("job_entrypoint"):
        pass
    asyncio.run(run_scripted_session(turns, mode="audio"))
    with traces.tracer.start_as_current_span("job_shutdown"):
        pass
    """
)


def our_entry_points() -> list[EntryPoint]:
    return [ep for ep in entry_points(group=GROUP) if ep.value.startswith("livekit_otel")]


def test_instrumentor_is_registered_as_an_opentelemetry_instrumentor() -> None:
    (entry_point,) = our_entry_points()
    assert entry_point.load() is LiveKitAgentsInstrumentor


def test_entry_point_belongs_to_the_livekit_otel_distribution() -> None:
    (entry_point,) = our_entry_points()
    assert entry_point.dist is not None
    assert entry_point.dist.name == "livekit-otel"


def sdk_configurator_path(tmp_path: Path) -> list[str]:
    """Where to find an ``opentelemetry_configurator``, the part opentelemetry-distro adds.

    ``opentelemetry-instrument`` only builds the SDK from ``OTEL_*`` variables through a
    configurator, which the ``opentelemetry-distro`` package registers. When it is not
    installed, register the SDK's own configurator (the one the distro subclasses) from
    a throwaway dist-info, as installing the distro would.
    """
    if list(entry_points(group="opentelemetry_configurator")):
        return []
    dist_info = tmp_path / "site" / "sdk_configurator_shim-0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sdk-configurator-shim\nVersion: 0.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_configurator]\n"
        "sdk = opentelemetry.sdk._configuration:_OTelSDKConfigurator\n"
    )
    return [str(tmp_path / "site")]


def run_with_opentelemetry_instrument(
    script: Path, receiver: OtlpReceiver, extra_path: list[str]
) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(script.parent),
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "aiohttp-client",
    }
    if extra_path:
        env["PYTHONPATH"] = ":".join(extra_path)
    return subprocess.run(
        [str(bin_dir / "opentelemetry-instrument"), sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def zero_code_spans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ReceivedSpan]]:
    """The spans a scripted session sends under ``opentelemetry-instrument`` (no code change)."""
    tmp_path = tmp_path_factory.mktemp("zero_code")
    script = tmp_path / "agent.py"
    script.write_text(AGENT_SCRIPT)
    receiver = OtlpReceiver().start()
    try:
        done = run_with_opentelemetry_instrument(script, receiver, sdk_configurator_path(tmp_path))
        assert done.returncode == 0, done.stderr
        yield receiver.wait_for_spans(1, timeout=10)
    finally:
        receiver.stop()


def test_opentelemetry_instrument_traces_a_session_with_no_code_change(
    zero_code_spans: list[ReceivedSpan],
) -> None:
    assert Counter(span.name for span in zero_code_spans) == Counter(
        {
            "agent_session": 1,
            "session_start": 1,
            "user_turn": 2,
            "end_of_turn": 2,
            "agent_turn": 2,
            "llm_node": 3,
            "function_tool": 1,
            "tts_node": tts_nodes_per_reply(0) + tts_nodes_per_reply(1),
            "session_close": 1,
        }
    )


def test_zero_code_trace_is_one_connected_tree(zero_code_spans: list[ReceivedSpan]) -> None:
    ids = {span.span_id for span in zero_code_spans}
    roots = [span.name for span in zero_code_spans if not span.parent_span_id]
    orphans = [s.name for s in zero_code_spans if s.parent_span_id and s.parent_span_id not in ids]
    assert roots == ["agent_session"]
    assert orphans == []
    assert len({span.trace_id for span in zero_code_spans}) == 1


def test_zero_code_trace_names_the_service_from_otel_service_name(
    zero_code_spans: list[ReceivedSpan],
) -> None:
    assert {span.resource.get("service.name") for span in zero_code_spans} == {SERVICE}


def test_zero_code_trace_holds_no_builtin_livekit_span(
    zero_code_spans: list[ReceivedSpan],
) -> None:
    assert {span.scope_name for span in zero_code_spans} == {"livekit_otel"}
