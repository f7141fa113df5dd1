"""What capturing audio costs: livekit-otel with and without ``audio="turns,call"``.

``measure`` runs this file as a worker process: two sessions of the benchmark
conversation in one process, their turns interleaved (each user turn a tone, each reply a
tone, so there is audio to encode), one capturing each turn's clip and the call's
recording into a directory, one not. Per turn: wall time and the event loop thread's CPU
(``time.thread_time``); at the end, the audio worker thread's CPU (Linux
``/proc/self/task``) and the seconds of audio it encoded. A task sleeping 5 ms over and
over measures the event loop's lag, charged to the session whose turn was running.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TURNS = 60
"""Turns of each session (at most ``--turns``)."""
NAMES = ("livekit-otel", "livekit-otel+audio")
_SELF = Path(__file__).resolve()


def measure(turns: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the worker process; returns what it measured."""
    done = subprocess.run(
        [sys.executable, str(_SELF), "--turns", str(turns)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=_SELF.parent.parent,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the audio bench worker failed with exit code {done.returncode}")
    data: dict[str, Any] = json.loads(lines[-1])
    say(
        f"audio run: {data['turns']} turns, {data['clip_seconds'] + data['call_seconds']:.0f} s "
        f"of audio, worker CPU {data['worker_cpu_s']:.2f} s"
    )
    return data


def render(data: dict[str, Any], warmup: int) -> list[str]:
    """The Markdown section: added time and CPU per turn and per second of audio, lag."""
    plain, audio = (data["variants"][name] for name in NAMES)

    def added(key: str) -> float:
        pairs = zip(plain[key][warmup:], audio[key][warmup:], strict=True)
        return statistics.median(b - a for a, b in pairs)

    worker_ms = data["worker_cpu_s"] * 1000
    audio_s = data["clip_seconds"] + data["call_seconds"]

    def lag(name: str) -> str:
        values = sorted(ms for index, ms in data["lag_ms"][name] if index >= warmup)
        if not values:
            return "-"
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return f"{statistics.median(values):.1f} / {p99:.1f} / {values[-1]:.1f} ms"

    return [
        f'## Audio capture: `audio="turns,call"` against none, two sessions in one process, '
        f"turns interleaved ({data['turns']} turns, each utterance and reply a tone, into a "
        "directory)",
        "",
        "| | value |",
        "|---|---:|",
        f"| added wall time per turn (median of pairs) | {added('turn_ms'):+.2f} ms |",
        f"| added event-loop CPU per turn (median of pairs) | {added('turn_cpu_ms'):+.2f} ms |",
        f"| audio worker thread CPU per turn | {worker_ms / max(data['turns'], 1):.1f} ms |",
        f"| audio encoded (clips + call recording) | {audio_s:.1f} s |",
        f"| audio worker CPU per second of audio | {worker_ms / max(audio_s, 1e-9):.1f} ms |",
        f"| audio worker CPU per second of call | "
        f"{worker_ms / max(data['call_seconds'], 1e-9):.1f} ms |",
        f"| jobs dropped | {data['worker_dropped']} |",
        f"| event-loop lag without audio (median / p99 / max of 5 ms sleeps) | {lag(NAMES[0])} |",
        f"| event-loop lag with audio | {lag(NAMES[1])} |",
        "",
    ]


# -- the worker process ------------------------------------------------------------------
def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds (user + system) a thread of this process used so far (Linux)."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sessions(turns: int) -> dict[str, Any]:
    """The two interleaved sessions (see the module docstring)."""
    from livekit_otel_dev.scripted import ScriptedConversation, ScriptedTTS
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from worker import script

    from livekit_otel import LiveKitAgentsInstrumentor
    from livekit_otel.audio import runtime

    class AudioSeconds(SpanProcessor):
        def __init__(self) -> None:
            self.clips = 0.0
            self.call = 0.0

        def on_end(self, span: ReadableSpan) -> None:
            seconds = (span.attributes or {}).get("lk.audio.duration")
            if isinstance(seconds, (int, float)):
                if span.name == "agent_session":
                    self.call += seconds
                else:
                    self.clips += seconds

    counted = AudioSeconds()
    provider = TracerProvider()
    provider.add_span_processor(counted)
    LiveKitAgentsInstrumentor().instrument(tracer_provider=provider, capture_content=True)
    active = LiveKitAgentsInstrumentor._active
    assert active is not None
    store = tempfile.mkdtemp(prefix="livekit-otel-bench-audio-")
    conversations: dict[str, Any] = {}
    for name in NAMES:
        if name.endswith("+audio"):  # a session takes the options in force at its start
            active.state.options = dataclasses.replace(
                active.state.options, audio=frozenset({"turns", "call"}), audio_store=store
            )
        conversations[name] = ScriptedConversation(tts=ScriptedTTS(tones={"": 523.0}))
        await conversations[name].start()
    turn_ms: dict[str, list[float]] = {name: [] for name in NAMES}
    turn_cpu_ms: dict[str, list[float]] = {name: [] for name in NAMES}
    lags: dict[str, list[tuple[int, float]]] = {name: [] for name in NAMES}
    now_running = [NAMES[0], 0]  # the session whose turn runs, and the turn's index
    running = True

    async def watch_lag() -> None:
        while running:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lag = (time.perf_counter() - started - 0.005) * 1000
            lags[str(now_running[0])].append((int(now_running[1]), lag))

    watcher = asyncio.create_task(watch_lag())
    for index, turn in enumerate(script(turns)):
        spoken = dataclasses.replace(turn, tone=330.0 + 40 * (index % 5), speech_duration=0.6)
        for name in NAMES if index % 2 == 0 else tuple(reversed(NAMES)):
            now_running[:] = [name, index]
            wall, cpu = time.perf_counter(), time.thread_time()
            await conversations[name].user_says(spoken)
            turn_cpu_ms[name].append((time.thread_time() - cpu) * 1000)
            turn_ms[name].append((time.perf_counter() - wall) * 1000)
    running = False
    await watcher
    for name in NAMES:
        await conversations[name].aclose()
    worker = runtime.shared_worker()
    drained = worker.drain(30.0)
    thread = getattr(worker, "_thread", None)
    return {
        "turns": turns,
        "variants": {
            name: {"turn_ms": turn_ms[name], "turn_cpu_ms": turn_cpu_ms[name]} for name in NAMES
        },
        "lag_ms": lags,
        "worker_cpu_s": _thread_cpu_s(getattr(thread, "native_id", None)),
        "worker_dropped": worker.dropped,
        "drained": drained,
        "clip_seconds": counted.clips,
        "call_seconds": counted.call,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=TURNS)
    args = parser.parse_args(argv)
    import livekit.agents  # noqa: F401  (import cost stays out of the measurement)

    sys.stdout.write(json.dumps(asyncio.run(sessions(args.turns))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
