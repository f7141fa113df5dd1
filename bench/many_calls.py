"""Fifty calls at once in one process: the per-turn time traced against untraced, and
whether every call kept its own trace and its own conversation.

Each round runs two worker processes side by side, started together once both are set
up: ``--sessions`` scripted calls of ``--turns`` turns each on one event loop
(``asyncio.gather``), untraced in one and with livekit-otel's spans, metrics (setup's
meter provider, in-memory reader) and content capture on in the other. A turn's time is
its wall time from the user's start of speech to the reply's end as its call sees it, the
other calls running meanwhile; CPU per turn is the process CPU time of all calls over all
their turns (start and close included).

The target is judged on the median of the rounds' ratios. With fifty calls the event loop
is the bottleneck, so a turn's wall time is the loop's CPU work for every call's turn
divided by the share of a core the process gets. On a shared machine that share moves
from minute to minute, more than tracing moves the time; run side by side, both processes
get the same share (the ``busy`` column: process CPU over elapsed time), so their ratio
is tracing's. The traced run, ending later, has its last turns to itself: a slight bias
in its favour.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_RATIO = 1.10
"""Target: a traced call's turn takes at most 1.10x the untraced time."""


@dataclass
class ManyCalls:
    """What the rounds measured, pooled."""

    sessions: int
    turns: int
    rounds: int = 0
    untraced_ms: list[float] = field(default_factory=list)
    traced_ms: list[float] = field(default_factory=list)
    untraced_cpu_ms: list[float] = field(default_factory=list)
    traced_cpu_ms: list[float] = field(default_factory=list)
    round_ratios: list[float] = field(default_factory=list)
    elapsed_s: list[float] = field(default_factory=list)
    busy: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})
    """Process CPU time over elapsed time, per run, untraced and traced."""
    isolation: dict[str, int] = field(default_factory=dict)
    digests: dict[int, set[str]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The median of the rounds' ratios of median turn times, traced over untraced."""
        return statistics.median(self.round_ratios)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.traced_cpu_ms) / statistics.median(self.untraced_cpu_ms)

    @property
    def changed_histories(self) -> int:
        """Calls whose conversation differed between runs (tracing changed it)."""
        return sum(1 for digests in self.digests.values() if len(digests) != 1)

    @property
    def apart(self) -> bool:
        """Every traced run: one trace per call, and nothing of one call in another's."""
        counts = dict(self.isolation)
        traces = counts.pop("traces", 0)
        return traces == self.sessions * self.rounds and not any(counts.values())

    def add(self, data: dict[str, Any]) -> None:
        """Pool one worker's result."""
        turns = [value for call in data["turn_ms"] for value in call]
        cpu_ms = data["cpu_s"] * 1000 / max(1, len(turns))
        (self.traced_ms if data["traced"] else self.untraced_ms).extend(turns)
        (self.traced_cpu_ms if data["traced"] else self.untraced_cpu_ms).append(cpu_ms)
        self.elapsed_s.append(data["elapsed_s"])
        self.busy[bool(data["traced"])].append(data["cpu_s"] / data["elapsed_s"])
        for index, digest in enumerate(data["digests"]):
            self.digests.setdefault(index, set()).add(digest)
        for key, value in data.get("isolation", {}).items():
            self.isolation[key] = self.isolation.get(key, 0) + value


def measure(
    run: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
    rounds: int,
    sessions: int,
    turns: int,
    progress: Callable[[str], None],
) -> ManyCalls:
    """``rounds`` rounds; ``run()`` gives the untraced and the traced worker's JSON."""
    result = ManyCalls(sessions=sessions, turns=turns)
    for index in range(rounds):
        medians: list[float] = []
        for data in run():
            result.add(data)
            medians.append(statistics.median(v for call in data["turn_ms"] for v in call))
            progress(
                f"{sessions} calls at once, round {index + 1}/{rounds}, "
                f"{'traced' if data['traced'] else 'untraced':<8} median turn "
                f"{medians[-1]:7.1f} ms, {data['elapsed_s']:.1f} s, "
                f"busy {data['cpu_s'] / data['elapsed_s']:.2f}"
            )
        result.round_ratios.append(medians[1] / medians[0])
        result.rounds += 1
    return result


def render(result: ManyCalls) -> tuple[list[str], bool]:
    """The section of the report, and whether its targets were met."""
    ratios = ", ".join(f"{ratio:.2f}x" for ratio in result.round_ratios)
    ratio_ok = result.ratio <= MAX_RATIO
    apart_ok = result.apart
    history_ok = result.changed_histories == 0
    counts = ", ".join(f"{key} {value}" for key, value in result.isolation.items())
    lines = [
        f"## {result.sessions} calls at once in one process: {result.rounds} rounds, "
        "untraced and traced (spans, metrics, content) side by side",
        "",
        "| | median turn (ms) | CPU per turn (ms) | busy |",
        "|---|---:|---:|---|",
        f"| untraced | {statistics.median(result.untraced_ms):.1f} "
        f"| {statistics.median(result.untraced_cpu_ms):.2f} | {_fractions(result.busy[False])} |",
        f"| traced | {statistics.median(result.traced_ms):.1f} "
        f"| {statistics.median(result.traced_cpu_ms):.2f} | {_fractions(result.busy[True])} |",
        f"| ratio | {result.ratio:.2f}x (rounds: {ratios}) | {result.cpu_ratio:.2f}x | |",
        "",
        f"{result.turns} turns per call; runs took {min(result.elapsed_s):.0f}-"
        f"{max(result.elapsed_s):.0f} s. A turn's time is its wall time as its call sees it "
        "while the others run; CPU per turn is the process's CPU time over all calls' turns, "
        "start and close included; busy is each run's CPU time over its elapsed time.",
        "",
        f"- {_verdict(ratio_ok)}: traced turns take {result.ratio:.2f}x the untraced time "
        f"(median of the rounds' ratios; target ≤ {MAX_RATIO:.2f}x); CPU per turn "
        f"{result.cpu_ratio:.2f}x",
        f"- {_verdict(apart_ok)}: every call kept its own trace ({counts})",
        f"- {_verdict(history_ok)}: every call's conversation is the same traced and untraced "
        f"({result.changed_histories} of {result.sessions} differ)",
        "",
    ]
    return lines, ratio_ok and apart_ok and history_ok


def _fractions(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"
