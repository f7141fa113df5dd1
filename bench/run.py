"""``make bench``: what livekit-otel costs a voice session, next to no tracing and LiveKit's own.

The sessions compared (``worker.VARIANTS``; add one there to add it everywhere):

- ``off``: no tracing;
- ``builtin``: LiveKit's own telemetry (``livekit.agents.telemetry.set_tracer_provider``);
- ``spans``: livekit-otel's spans alone, content capture off;
- ``spans+metrics``: and its OpenTelemetry metrics, into an SDK meter provider built as
  setup builds it (in-memory reader, no exemplar sampling);
- ``spans+metrics+content``: and content capture on: everything livekit-otel records,
  the variant the targets are judged on;
- ``unsampled``: the same with a tracer provider that samples no span: livekit-otel does
  all its work, the SDK records no span; the paired run's difference to
  ``spans+metrics+content`` is what the SDK's recording of the spans costs.

Spans go to in-memory exporters, emptied between turns. Each is the same offline scripted
audio session (a tool call every other turn); the first ``--warmup`` turns are skipped.
Three sections, each with its targets, go to the terminal and ``bench/results/latest.md``:

1. Separate processes (``--configs``, ``--rounds``): one session per process, the
   order rotated each round, plus ``livekit-otel-otlp`` (``setup_otlp`` exporting over
   OTLP/HTTP, batch and gzip, to a local receiver). Processes differ by several percent
   from run to run on a shared machine, more than livekit-otel costs, so:
2. Paired (``--no-paired`` skips it): every variant as its own session in one process,
   their turns interleaved one at a time, each turn compared with the untraced session's
   same turn. CPU per turn is the process CPU time (``time.process_time``) from a
   turn's start until the event loop has run what the turn left ready; only that
   session's turn runs meanwhile (the others wait for their user), so the CPU is that
   session's. This is the CPU-per-turn figure to quote: wall time and CPU, per turn and
   added over ``off``.
3. Many calls (``--concurrent-rounds``, 0 skips it): ``--sessions`` calls at once in one
   process, untraced and traced, in separate processes alternating; the per-turn time
   ratio, every trace apart, every conversation unchanged (``many_calls.py``).
4. Audio capture (``--no-audio`` skips it): ``audio="turns,call"`` against none, two
   sessions in one process, turns interleaved (``audio_cost.py``).

::

    python bench/run.py                      # 300 turns, 3 rounds, 7 rounds of 50 calls
    python bench/run.py --turns 100 --rounds 2
    python bench/run.py --paired-only        # the paired CPU/wall table alone
    python bench/run.py --concurrent         # the 50 calls alone
    python bench/run.py --profile            # where spans+metrics+content spends, per turn
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import audio_cost
import hot_path
import many_calls
from worker import CONCURRENT, FULL, OTLP, UNSAMPLED, VARIANTS, VARIANTS_BY_NAME

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORKER = BENCH / "worker.py"
DEFAULT_OUT = BENCH / "results" / "latest.md"
CONFIGS = (*VARIANTS_BY_NAME, OTLP)
SEPARATE_CONFIGS = ("off", "builtin", FULL, OTLP)
"""Run in separate processes by default: the paired run covers every variant."""
PAIRED = "paired"
RUN_TIMEOUT_S = 600.0
CONCURRENT_ROUNDS = 7
"""Rounds of the calls at once: one round's ratio moves by up to a fifth with the loop's
scheduling and the garbage collector's full passes, so the verdict takes the median of seven."""

# targets
MAX_OVERHEAD = 0.05  # livekit-otel at most 5 % slower per turn than off
MAX_GROWTH = 1.2  # overhead in the last 10 % of turns at most 1.2x that of the first 10 %
MAX_SHARE_OF_BUILTIN = 0.1  # livekit-otel adds at most 1/10 of what builtin adds per turn
MAX_CPU_ADDED_MS = 1.0  # spans, metrics and content at most 1 ms of CPU per turn (paired)
# Below this many milliseconds per turn an overhead is within the benchmark's resolution
# (a fraction of the spread between rounds), so its growth ratio says nothing.
NOISE_FLOOR_FRACTION = 0.01  # of off's median turn time


@dataclass
class Run:
    """One worker run's result (the worker's JSON)."""

    config: str
    data: dict[str, Any]

    def measured(self, key: str, warmup: int) -> list[float]:
        values: list[float] = self.data[key]
        return values[warmup:]


@dataclass
class Summary:
    """Everything the table shows for one config."""

    config: str
    runs: int
    median_ms: float
    run_medians: list[float]
    first_ms: float
    last_ms: float
    cpu_turn_ms: float
    cpu_first_ms: float
    cpu_last_ms: float
    line: tuple[float, float]
    measured_turns: int
    cpu_s: float
    peak_rss_mb: float
    spans_per_turn: float
    delivered: str


def window(values: Sequence[float], first: bool) -> list[float]:
    """The first or last 10 % of ``values`` (at least one)."""
    size = max(1, len(values) // 10)
    return list(values[:size]) if first else list(values[-size:])


def trend(values_by_run: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Theil-Sen line through (turn index, value) of every run: slope and intercept.

    The median of pairwise slopes shrugs off the odd slow turn, and uses every turn, so
    it tells growth apart from noise far better than two windows of 10 % each.
    """
    points = [(float(x), y) for values in values_by_run for x, y in enumerate(values)]
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    ]
    slope = statistics.median(slopes)
    return slope, statistics.median(y - slope * x for x, y in points)


def window_centres(count: int) -> tuple[float, float]:
    """The turn index at the middle of the first and of the last 10 % of ``count`` turns."""
    size = max(1, count // 10)
    return (size - 1) / 2, count - (size + 1) / 2


def at(line: tuple[float, float], x: float) -> float:
    return line[0] * x + line[1]


def summarize(config: str, runs: list[Run], warmup: int, received: dict[int, int]) -> Summary:
    """Pool the measured turns of every round of one config."""
    turns: list[float] = []
    cpu: list[float] = []
    first: list[float] = []
    last: list[float] = []
    cpu_first: list[float] = []
    cpu_last: list[float] = []
    for run in runs:
        wall = run.measured("turn_ms", warmup)
        cpu_turns = run.measured("turn_cpu_ms", warmup)
        turns += wall
        cpu += cpu_turns
        first += window(wall, True)
        last += window(wall, False)
        cpu_first += window(cpu_turns, True)
        cpu_last += window(cpu_turns, False)
    spans = statistics.median(run.data["spans_ended"] / run.data["turns"] for run in runs)
    delivered = "-"
    if config == OTLP:
        sent = sum(run.data["spans_ended"] for run in runs)
        got = sum(received.get(id(run), 0) for run in runs)
        delivered = f"{got}/{sent}"
    return Summary(
        config=config,
        runs=len(runs),
        median_ms=statistics.median(turns),
        run_medians=[statistics.median(run.measured("turn_ms", warmup)) for run in runs],
        first_ms=statistics.median(first),
        last_ms=statistics.median(last),
        cpu_turn_ms=statistics.median(cpu),
        cpu_first_ms=statistics.median(cpu_first),
        cpu_last_ms=statistics.median(cpu_last),
        line=trend([run.measured("turn_ms", warmup) for run in runs]),
        measured_turns=len(runs[0].measured("turn_ms", warmup)),
        cpu_s=statistics.median(run.data["cpu_s"] for run in runs),
        peak_rss_mb=max(run.data["maxrss_kb"] for run in runs) / 1024,
        spans_per_turn=spans,
        delivered=delivered,
    )


def start_receiver() -> Any:
    """The test suite's OTLP/HTTP receiver, on 127.0.0.1 in this process."""
    sys.path.insert(0, str(ROOT / "tests"))
    from livekit_otel_dev.otlp_receiver import OtlpReceiver

    return OtlpReceiver().start()


def run_worker(
    config: str, turns: int, endpoint: str | None = None, *options: str, profile: str | None = None
) -> Run:
    """Run one worker process and parse its result line."""
    command = [sys.executable, str(WORKER), "--config", config, "--turns", str(turns)]
    if endpoint:
        command += ["--endpoint", endpoint]
    if profile:
        command += ["--profile", profile]
    command += options
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"bench worker {config!r} failed with exit code {done.returncode}")
    return Run(config, json.loads(lines[-1]))


def run_side_by_side(commands: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Start workers together: each prints ``ready`` once set up, then all get ``go`` at
    once, so a busy spell of the machine falls on all of them alike."""
    workers = {
        name: subprocess.Popen(
            [sys.executable, str(WORKER), *command, "--wait-go"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name, command in commands.items()
    }
    for name, worker in workers.items():
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            for other in workers.values():
                other.kill()
            raise SystemExit(f"bench worker {name!r} failed before it was ready")
    for worker in workers.values():
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results: dict[str, dict[str, Any]] = {}
    for name, worker in workers.items():
        out, err = worker.communicate(timeout=RUN_TIMEOUT_S)
        lines = out.strip().splitlines()
        if worker.returncode != 0 or not lines:
            sys.stderr.write(err[-4000:])
            raise SystemExit(f"bench worker {name!r} failed with exit code {worker.returncode}")
        results[name] = json.loads(lines[-1])
    return results


def wait_received(receiver: Any, count: int, timeout: float = 10.0) -> int:
    """Spans the receiver accepted, waiting up to ``timeout`` s for ``count`` of them."""
    deadline = time.monotonic() + timeout
    while len(receiver.spans) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(receiver.spans)


def percent(ratio: float) -> str:
    return f"{ratio * 100:+.1f} %"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Comparison:
    """livekit-otel (all on) and builtin against off, in milliseconds per turn."""

    label: str
    off_ms: float
    added_ms: float
    first_added_ms: float
    last_added_ms: float
    trend_first_added_ms: float
    trend_last_added_ms: float
    cpu_added_ms: float
    builtin_added_ms: float | None
    builtin_cpu_added_ms: float | None
    noise_ms: float
    """What the measurement cannot tell apart from zero, in ms per turn."""
    cpu_target: bool = False
    """Whether the CPU target is judged on this measurement (the paired one)."""


def compare_runs(summaries: dict[str, Summary]) -> Comparison | None:
    """The separate-process comparison: medians of pooled turns minus off's."""
    off, ours = summaries.get("off"), summaries.get(FULL)
    if off is None or ours is None:
        return None
    builtin = summaries.get("builtin")
    first, last = window_centres(off.measured_turns)
    return Comparison(
        label="separate processes",
        off_ms=off.median_ms,
        added_ms=ours.median_ms - off.median_ms,
        first_added_ms=ours.first_ms - off.first_ms,
        last_added_ms=ours.last_ms - off.last_ms,
        trend_first_added_ms=at(ours.line, first) - at(off.line, first),
        trend_last_added_ms=at(ours.line, last) - at(off.line, last),
        cpu_added_ms=ours.cpu_turn_ms - off.cpu_turn_ms,
        builtin_added_ms=builtin.median_ms - off.median_ms if builtin else None,
        builtin_cpu_added_ms=builtin.cpu_turn_ms - off.cpu_turn_ms if builtin else None,
        # half the spread of off's own run medians: how far two runs of one config differ
        noise_ms=max(
            NOISE_FLOOR_FRACTION * off.median_ms,
            (max(off.run_medians) - min(off.run_medians)) / 2,
        ),
    )


@dataclass
class Paired:
    """One config of the paired run against off, turn by turn."""

    config: str
    median_ms: float
    added_ms: float
    first_added_ms: float
    last_added_ms: float
    cpu_ms: float
    cpu_added_ms: float
    cpu_first_added_ms: float
    cpu_last_added_ms: float
    spans_per_turn: float
    trend_first_added_ms: float
    trend_last_added_ms: float


def pair(data: dict[str, Any], config: str, warmup: int) -> Paired:
    """Differences to off's same turn: their median, and in the first and last tenth."""
    mine, off = data["variants"][config], data["variants"]["off"]

    def added(key: str) -> list[float]:
        return [a - b for a, b in zip(mine[key][warmup:], off[key][warmup:], strict=True)]

    wall, cpu = added("turn_ms"), added("turn_cpu_ms")
    line = trend([wall])
    first, last = window_centres(len(wall))
    return Paired(
        config=config,
        median_ms=statistics.median(mine["turn_ms"][warmup:]),
        added_ms=statistics.median(wall),
        first_added_ms=statistics.median(window(wall, True)),
        last_added_ms=statistics.median(window(wall, False)),
        cpu_ms=statistics.median(mine["turn_cpu_ms"][warmup:]),
        cpu_added_ms=statistics.median(cpu),
        cpu_first_added_ms=statistics.median(window(cpu, True)),
        cpu_last_added_ms=statistics.median(window(cpu, False)),
        spans_per_turn=mine["spans_ended"] / data["turns"],
        trend_first_added_ms=at(line, first),
        trend_last_added_ms=at(line, last),
    )


def compare_paired(paired: dict[str, Paired]) -> Comparison | None:
    ours, off = paired.get(FULL), paired.get("off")
    if ours is None or off is None:
        return None
    builtin = paired.get("builtin")
    return Comparison(
        label="paired, one process",
        off_ms=off.median_ms,
        added_ms=ours.added_ms,
        first_added_ms=ours.first_added_ms,
        last_added_ms=ours.last_added_ms,
        trend_first_added_ms=ours.trend_first_added_ms,
        trend_last_added_ms=ours.trend_last_added_ms,
        cpu_added_ms=ours.cpu_added_ms,
        builtin_added_ms=builtin.added_ms if builtin else None,
        builtin_cpu_added_ms=builtin.cpu_added_ms if builtin else None,
        noise_ms=NOISE_FLOOR_FRACTION * off.median_ms,
        cpu_target=True,
    )


def summary_table(summaries: dict[str, Summary]) -> list[str]:
    off = summaries.get("off")
    lines = [
        "| config | median turn (ms) | overhead vs off | first 10 % / last 10 % overhead "
        "| growth | CPU/turn (ms) | CPU overhead first / last | CPU total (s) | peak RSS (MB) "
        "| spans/turn | delivered | run medians (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for summary in summaries.values():
        overhead = growth = first_last = cpu_first_last = "-"
        if off is not None and summary.config != "off":
            overhead = percent(summary.median_ms / off.median_ms - 1)
            first_over = summary.first_ms / off.first_ms - 1
            last_over = summary.last_ms / off.last_ms - 1
            first_last = f"{percent(first_over)} / {percent(last_over)}"
            growth = f"{last_over / first_over:.2f}x" if first_over > 0 else "n/a"
            cpu_first = summary.cpu_first_ms / off.cpu_first_ms - 1
            cpu_last = summary.cpu_last_ms / off.cpu_last_ms - 1
            cpu_first_last = f"{percent(cpu_first)} / {percent(cpu_last)}"
        medians = ", ".join(f"{value:.1f}" for value in summary.run_medians)
        lines.append(
            f"| {summary.config} | {summary.median_ms:.2f} | {overhead} | {first_last} "
            f"| {growth} | {summary.cpu_turn_ms:.2f} | {cpu_first_last} | {summary.cpu_s:.2f} "
            f"| {summary.peak_rss_mb:.0f} | {summary.spans_per_turn:.2f} | {summary.delivered} "
            f"| {medians} |"
        )
    return lines


def paired_table(paired: dict[str, Paired]) -> list[str]:
    off = paired["off"]
    lines = [
        "| session | wall/turn (ms) | wall added (ms) | overhead vs off | wall added first / "
        "last 10 % (ms) | CPU/turn (ms) | CPU added (ms) | CPU added first / last 10 % (ms) "
        "| spans/turn |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in paired.values():
        if row.config == "off":
            lines.append(
                f"| off | {row.median_ms:.2f} | - | - | - | {row.cpu_ms:.2f} | - | - | 0.00 |"
            )
            continue
        lines.append(
            f"| {row.config} | {row.median_ms:.2f} | {row.added_ms:+.2f} "
            f"| {percent(row.added_ms / off.median_ms)} "
            f"| {row.first_added_ms:+.2f} / {row.last_added_ms:+.2f} | {row.cpu_ms:.2f} "
            f"| {row.cpu_added_ms:+.2f} | {row.cpu_first_added_ms:+.2f} / "
            f"{row.cpu_last_added_ms:+.2f} | {row.spans_per_turn:.2f} |"
        )
    return lines


def steps(paired: dict[str, Paired]) -> list[str]:
    """What each livekit-otel session adds over the one before it in ``VARIANTS``."""
    ours = [v for v in VARIANTS if v.spans and v.sampled and v.name in paired]
    lines: list[str] = []
    previous = "off"
    for variant in ours:
        row, before = paired[variant.name], paired[previous]
        lines.append(
            f"- {variant.name} ({variant.description}): {row.cpu_added_ms:+.2f} ms CPU, "
            f"{row.added_ms:+.2f} ms wall per turn over off; "
            f"{row.cpu_added_ms - before.cpu_added_ms:+.2f} ms CPU over {previous}"
        )
        previous = variant.name
    if UNSAMPLED in paired and FULL in paired:
        row, full = paired[UNSAMPLED], paired[FULL]
        lines.append(
            f"- {UNSAMPLED} ({VARIANTS_BY_NAME[UNSAMPLED].description}): "
            f"{row.cpu_added_ms:+.2f} ms CPU over off; the SDK recording the spans of "
            f"{FULL} is the difference, {full.cpu_added_ms - row.cpu_added_ms:+.2f} ms CPU"
        )
    builtin = next((v for v in VARIANTS if v.builtin and v.name in paired), None)
    if builtin is not None:
        row = paired[builtin.name]
        lines.append(
            f"- {builtin.name} ({builtin.description}): {row.cpu_added_ms:+.2f} ms CPU, "
            f"{row.added_ms:+.2f} ms wall per turn over off"
        )
    return [*lines, ""] if lines else []


def render(
    summaries: dict[str, Summary],
    paired: dict[str, Paired] | None,
    crowd: many_calls.ManyCalls | None,
    args: argparse.Namespace,
    meta: dict[str, str],
) -> tuple[str, bool]:
    """The Markdown report and whether every target was met (in every measurement)."""
    lines = [
        "# livekit-otel benchmark",
        "",
        f"{meta['when']} · {meta['machine']} · Python {meta['python']} · "
        f"livekit-agents {meta['livekit']} · opentelemetry-sdk {meta['otel']}",
        "",
        f"Load average {meta['load']}; bench took {meta['elapsed']}.",
        "",
    ]
    if paired is not None or summaries:
        lines += [
            f"Scripted audio session, {args.turns} turns (tool call every other turn), "
            f"first {args.warmup} turns skipped.",
            "",
        ]
    comparisons: list[Comparison | None] = []
    if paired is not None:
        lines += [
            f"## Paired: {', '.join(paired)} as {len(paired)} sessions in one process, "
            "turns interleaved",
            "",
            *paired_table(paired),
            "",
            *steps(paired),
        ]
        comparisons.append(compare_paired(paired))
    if summaries:
        lines += [
            f"## Separate processes: {args.rounds} rounds x {len(summaries)} configs, "
            "order rotated each round",
            "",
            *summary_table(summaries),
            "",
        ]
        comparisons.append(compare_runs(summaries))
    ok = True
    for comparison in comparisons:
        if comparison is None:
            continue
        targets, met = targets_text(comparison)
        ok = ok and met
        lines += [f"## Targets ({comparison.label}, {FULL} against off)", "", *targets, ""]
    if crowd is not None:
        crowd_lines, met = many_calls.render(crowd)
        ok = ok and met
        lines += crowd_lines
    if paired is None and not summaries:
        return "\n".join(lines), ok
    lines += [
        "Paired: each turn against the same turn of `off`, run right before or after it; "
        "medians of those differences. CPU is process CPU time (`time.process_time`, all "
        "threads) from the turn's start until the event loop has run what the turn left "
        "ready to run; one session's turn runs at a time, so it is that session's. "
        "livekit-otel's wrappers are installed for the whole process, so `off` and "
        "`builtin` pay their pass-through (a check per wrapped call). "
        "Separate processes: medians of pooled turns (all rounds) against `off`'s; "
        "'first / last 10 %' are the first and last tenth of the measured turns, 'growth' "
        "is last over first. The growth target is judged on Theil-Sen trend lines through "
        "every measured turn (the added time they give at the middle of the first and of "
        "the last 10 %): two windows of 30 turns each differ by a millisecond from noise "
        "alone. Noise: 1 % of off's turn, or for separate processes half the spread of "
        "off's run medians if that is more. In-memory exporters are emptied between turns "
        "(untimed), as a real exporter frees what it sent.",
        "",
    ]
    return "\n".join(lines), ok


def targets_text(comparison: Comparison) -> tuple[list[str], bool]:
    """One line per target, with the numbers it was judged on."""
    lines: list[str] = []
    overhead = comparison.added_ms / comparison.off_ms
    results = [overhead <= MAX_OVERHEAD]
    lines.append(
        f"- {verdict(results[-1])}: livekit-otel per-turn overhead {percent(overhead)} "
        f"({comparison.added_ms:+.2f} ms; target ≤ {percent(MAX_OVERHEAD)})"
    )
    first_ms, last_ms = comparison.trend_first_added_ms, comparison.trend_last_added_ms
    allowed = MAX_GROWTH * max(first_ms, 0.0) + comparison.noise_ms
    results.append(last_ms <= allowed)
    ratio = f"{last_ms / first_ms:.2f}x" if first_ms > 0 else "n/a (first ≤ 0)"
    lines.append(
        f"- {verdict(results[-1])}: overhead does not grow: trend line {first_ms:+.2f} ms per "
        f"turn at the first 10 %, {last_ms:+.2f} ms at the last 10 % (ratio {ratio}); "
        f"allowed {MAX_GROWTH}x the first plus noise {comparison.noise_ms:.2f} ms = "
        f"{allowed:.2f} ms (window medians {comparison.first_added_ms:+.2f} / "
        f"{comparison.last_added_ms:+.2f} ms)"
    )
    if comparison.builtin_added_ms is not None:
        share = MAX_SHARE_OF_BUILTIN * comparison.builtin_added_ms
        results.append(comparison.added_ms <= share)
        lines.append(
            f"- {verdict(results[-1])}: livekit-otel adds {comparison.added_ms:+.2f} ms per "
            f"turn, builtin adds {comparison.builtin_added_ms:+.2f} ms (target ≤ 1/10 of "
            f"builtin's: {share:.2f} ms)"
        )
    builtin_cpu = ""
    if comparison.builtin_cpu_added_ms is not None:
        builtin_cpu = f"; builtin {comparison.builtin_cpu_added_ms:+.2f} ms"
    if comparison.cpu_target:
        results.append(comparison.cpu_added_ms <= MAX_CPU_ADDED_MS)
        lines.append(
            f"- {verdict(results[-1])}: CPU per turn: livekit-otel adds "
            f"{comparison.cpu_added_ms:+.2f} ms (target ≤ {MAX_CPU_ADDED_MS:.1f} ms){builtin_cpu}"
        )
    else:
        lines.append(
            f"- info: CPU per turn: livekit-otel {comparison.cpu_added_ms:+.2f} ms vs off"
            f"{builtin_cpu}"
        )
    return lines, all(results)


def metadata(started: float) -> dict[str, str]:
    """Where and when the bench ran."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "livekit": version("livekit-agents"),
        "otel": version("opentelemetry-sdk"),
        "load": f"{load} (1, 5, 15 min, at the end)",
        "elapsed": f"{time.monotonic() - started:.0f} s",
    }


def separate_runs(
    configs: list[str], args: argparse.Namespace, digests: set[str]
) -> dict[str, Summary]:
    """Every config in its own process, ``args.rounds`` times, the order rotated."""
    if not configs:
        return {}
    receiver = start_receiver()
    runs: dict[str, list[Run]] = {name: [] for name in configs}
    received: dict[int, int] = {}
    try:
        for round_index in range(args.rounds):
            shift = round_index % len(configs)
            for config in configs[shift:] + configs[:shift]:
                receiver.clear()
                run = run_worker(config, args.turns, receiver.url)
                if config == OTLP:
                    received[id(run)] = wait_received(receiver, run.data["spans_ended"])
                runs[config].append(run)
                digests.add(run.data["history_digest"])
                print(
                    f"round {round_index + 1}/{args.rounds} {config:<22} "
                    f"median {statistics.median(run.measured('turn_ms', args.warmup)):6.2f} ms "
                    f"cpu {run.data['cpu_s']:6.2f} s  spans {run.data['spans_ended']}",
                    flush=True,
                )
    finally:
        receiver.stop()
    return {name: summarize(name, runs[name], args.warmup, received) for name in configs}


def paired_run(args: argparse.Namespace, digests: set[str]) -> dict[str, Paired]:
    """Every variant as a session of one process, turns interleaved; each against off."""
    paired_data = run_worker(PAIRED, args.turns).data
    paired = {name: pair(paired_data, name, args.warmup) for name in paired_data["variants"]}
    digests.update(v["history_digest"] for v in paired_data["variants"].values())
    print(
        "paired run: "
        + ", ".join(
            f"{name} {row.median_ms:.1f} ms wall {row.cpu_ms:.1f} ms CPU"
            for name, row in paired.items()
        ),
        flush=True,
    )
    return paired


def crowd_run(args: argparse.Namespace) -> many_calls.ManyCalls:
    """``args.sessions`` calls at once, untraced and traced, ``args.concurrent_rounds`` times."""

    def run() -> tuple[dict[str, Any], dict[str, Any]]:
        command = ["--config", CONCURRENT, "--turns", str(args.concurrent_turns)]
        command += ["--sessions", str(args.sessions)]
        results = run_side_by_side({"untraced": command, "traced": [*command, "--traced"]})
        return results["untraced"], results["traced"]

    return many_calls.measure(
        run,
        args.concurrent_rounds,
        args.sessions,
        args.concurrent_turns,
        lambda line: print(line, flush=True),
    )


def bench(args: argparse.Namespace) -> int:
    """Run the sections asked for, print and write the report; exit 1 on a missed target
    with ``--strict``."""
    started = time.monotonic()
    configs = [name for name in args.configs.split(",") if name]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown config(s) {', '.join(unknown)}; choose from {CONFIGS}")
    digests: set[str] = set()
    paired = paired_run(args, digests) if args.paired else None
    summaries = separate_runs(configs if args.rounds > 0 else [], args, digests)
    crowd = crowd_run(args) if args.concurrent_rounds > 0 else None
    say = lambda line: print(line, flush=True)  # noqa: E731
    audio = audio_cost.measure(min(args.turns, audio_cost.TURNS), say) if args.audio else None
    report, ok = render(summaries, paired, crowd, args, metadata(started))
    if audio is not None:
        report += "\n" + "\n".join(audio_cost.render(audio, args.warmup))
    if len(digests) > 1:
        report += "\n**Warning:** the conversation differed between runs (history digests "
        report += f"{sorted(digests)}): tracing changed the session.\n"
        ok = False
    print()
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")
    return 0 if ok or not args.strict else 1


def profile(args: argparse.Namespace) -> int:
    """cProfile one session of ``args.profile_variant`` and print where our code spends."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "session.prof")
        run = run_worker(args.profile_variant, args.turns, profile=path)
        hot = hot_path.analyse(path, args.turns)
    title = (
        f"Hot path: {args.profile_variant}, {args.turns} turns, cProfile "
        f"(livekit-agents {version('livekit-agents')}, opentelemetry-sdk "
        f"{version('opentelemetry-sdk')}; session {run.data['session_s']:.1f} s profiled, "
        f"{run.data['spans_ended'] / args.turns:.1f} spans per turn)"
    )
    print("\n".join(hot_path.render(hot, args.top, title)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300, help="turns per session (300)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each config (3; 0 skips)")
    parser.add_argument("--warmup", type=int, default=5, help="turns skipped per run (5)")
    parser.add_argument(
        "--configs",
        default=",".join(SEPARATE_CONFIGS),
        help=f"separate processes, comma-separated, of {', '.join(CONFIGS)}",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the Markdown report")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--no-paired", dest="paired", action="store_false", help="skip the paired run"
    )
    parser.add_argument(
        "--no-audio", dest="audio", action="store_false", help="skip the audio capture run"
    )
    parser.add_argument(
        "--paired-only", action="store_true", help="only the paired run (CPU and wall per turn)"
    )
    parser.add_argument("--sessions", type=int, default=50, help="calls at once (50)")
    parser.add_argument(
        "--concurrent-turns", type=int, default=4, help="turns of each of those calls (4)"
    )
    parser.add_argument(
        "--concurrent-rounds",
        type=int,
        default=CONCURRENT_ROUNDS,
        help=f"untraced/traced pairs of the calls at once ({CONCURRENT_ROUNDS}; 0 skips)",
    )
    parser.add_argument("--concurrent", action="store_true", help="only the calls at once")
    parser.add_argument(
        "--profile", action="store_true", help="profile our code instead (see --profile-variant)"
    )
    parser.add_argument(
        "--profile-variant", default=FULL, choices=list(VARIANTS_BY_NAME), help=f"({FULL})"
    )
    parser.add_argument("--top", type=int, default=15, help="rows per --profile table (15)")
    args = parser.parse_args(argv)
    if args.turns <= args.warmup + 10:
        parser.error("--turns must exceed --warmup by more than 10")
    if args.paired_only:
        args.rounds, args.concurrent_rounds, args.audio = 0, 0, False
    if args.concurrent:
        args.rounds, args.paired, args.audio = 0, False, False
        args.concurrent_rounds = args.concurrent_rounds or CONCURRENT_ROUNDS
    return profile(args) if args.profile else bench(args)


if __name__ == "__main__":
    sys.exit(main())
