"""Where livekit-otel's own time goes per turn, from a cProfile of one scripted session.

Our code is every function under ``livekit_otel/``. What it costs is its own time plus
the time of what it calls outside itself (the OpenTelemetry SDK and API, ``json``,
``getattr`` on LiveKit objects, LiveKit properties read through ``compat``), except the
calls through which a hook passes control back to LiveKit: a hook (``livekit_otel/hooks/``)
calls LiveKit's own function, iterates LiveKit's stream or calls LiveKit's callback,
and the time under that call is LiveKit's work, not ours. The layering makes the rule
sound: hooks read nothing from LiveKit themselves (reading goes through ``compat``), so
a call from a hook into ``livekit/`` or the dev kit's scripted plugins is a hand-back.

Three views, in milliseconds per turn of the profiled session. cProfile adds a cost to
every call, so its times are several times the real ones, and more so for code that makes
many small calls (``getattr``, ``dict.get``): read the shares, and scale them by the CPU
per turn the paired run measures without a profiler.

- our functions by *cumulative own-code time*: the function's own time, what it calls
  outside our code (hand-backs excluded), and the same of our functions it calls, these
  apportioned by the share of their time spent under this caller;
- where the time ends up: our own lines, and each outside function we call, by callee;
- by module: each module's exclusive time (its functions' own time and the outside
  calls they make themselves).
"""

from __future__ import annotations

import pstats
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

FunctionKey = tuple[str, int, str]
"""cProfile's key of a function: file, first line, name."""

OURS = "livekit_otel/"
HOOKS = "livekit_otel/hooks/"
LIVEKIT_SIDE = ("/livekit/", "livekit_otel_dev/")


def is_ours(key: FunctionKey) -> bool:
    return OURS in key[0]


def is_hand_back(caller: FunctionKey, callee: FunctionKey) -> bool:
    """A call by which one of our hooks gives control back to LiveKit (its work, not ours)."""
    return HOOKS in caller[0] and any(part in callee[0] for part in LIVEKIT_SIDE)


def label(key: FunctionKey) -> str:
    """``module.py:line function`` for our code, ``package/module.py:function`` outside."""
    filename, line, name = key
    if filename == "~":
        return name
    if OURS in filename:
        return f"{filename.split(OURS)[-1]}:{line} {name}"
    for anchor in ("site-packages/", "/lib/python"):
        if anchor in filename:
            tail = filename.split(anchor)[-1]
            tail = tail.split("/", 1)[-1] if anchor == "/lib/python" else tail
            return f"{tail}:{name}"
    return f"{filename}:{name}"


def module_of(key: FunctionKey) -> str:
    return key[0].split(OURS)[-1]


@dataclass
class Row:
    """One line of a view: what it names, ms per turn, calls per turn."""

    name: str
    ms: float
    calls: float
    extra_ms: float = 0.0
    """The cumulative view: the function's exclusive time (own and direct outside calls)."""


@dataclass
class HotPath:
    """The three views, and our code's total, all per turn."""

    turns: int
    total_ms: float
    profiled_ms: float
    """Everything the profile saw, per turn (LiveKit's and the dev kit's work too)."""
    own_calls: float
    """Calls of our functions per turn: a count the machine's load does not move."""
    outside_calls: float
    """Calls our code makes outside itself per turn (hand-backs excluded)."""
    functions: list[Row]
    callees: list[Row]
    modules: list[Row]


class _Graph:
    def __init__(self, stats: dict[FunctionKey, tuple[int, int, float, float, dict]]) -> None:
        self.stats = stats
        self.exclusive: dict[FunctionKey, float] = {}
        self.outside: dict[FunctionKey, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self.children: dict[FunctionKey, list[tuple[FunctionKey, float]]] = defaultdict(list)
        for callee, (_, _, own, cumulative, callers) in stats.items():
            if is_ours(callee):
                self.exclusive[callee] = self.exclusive.get(callee, 0.0) + own
            for caller, (_, calls, _, edge_cumulative) in callers.items():
                if not is_ours(caller):
                    continue
                if is_ours(callee):
                    share = edge_cumulative / cumulative if cumulative > 0 else 0.0
                    self.children[caller].append((callee, share))
                elif not is_hand_back(caller, callee):
                    self.exclusive[caller] = self.exclusive.get(caller, 0.0) + edge_cumulative
                    totals = self.outside[callee]
                    totals[0] += edge_cumulative
                    totals[1] += calls
        self._cumulative: dict[FunctionKey, float] = {}

    def cumulative(self, key: FunctionKey, visiting: frozenset[FunctionKey] = frozenset()) -> float:
        """Own-code time under ``key``; a call back into a function on the stack adds 0."""
        if key in self._cumulative:
            return self._cumulative[key]
        inside = visiting | {key}
        value = self.exclusive.get(key, 0.0) + sum(
            share * self.cumulative(child, inside)
            for child, share in self.children.get(key, [])
            if child not in inside
        )
        if not visiting & set(dict(self.children.get(key, [])).keys()):
            self._cumulative[key] = value
        return value


def analyse(path: str, turns: int) -> HotPath:
    """The views of the cProfile dump at ``path`` of a session of ``turns`` turns."""
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    graph = _Graph(stats)
    per_turn = 1000.0 / turns
    functions = [
        Row(label(key), graph.cumulative(key) * per_turn, stats[key][1] / turns,
            graph.exclusive[key] * per_turn)
        for key in graph.exclusive
    ]  # fmt: skip
    own = sum(stats[key][2] for key in graph.exclusive)
    callees = [Row("(our own lines)", own * per_turn, 0.0)] + [
        Row(label(key), cumulative * per_turn, calls / turns)
        for key, (cumulative, calls) in graph.outside.items()
    ]
    by_module: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for key, exclusive in graph.exclusive.items():
        by_module[module_of(key)][0] += exclusive
        by_module[module_of(key)][1] += stats[key][1]
    modules = [
        Row(name, exclusive * per_turn, calls / turns)
        for name, (exclusive, calls) in by_module.items()
    ]
    profiled = sum(row[2] for row in stats.values())
    return HotPath(
        turns=turns,
        total_ms=sum(graph.exclusive.values()) * per_turn,
        profiled_ms=profiled * per_turn,
        own_calls=sum(stats[key][1] for key in graph.exclusive) / turns,
        outside_calls=sum(calls for _, calls in graph.outside.values()) / turns,
        functions=_top(functions),
        callees=_top(callees),
        modules=_top(modules),
    )


def _top(rows: Iterable[Row], count: int | None = None) -> list[Row]:
    ordered = sorted(rows, key=lambda row: row.ms, reverse=True)
    return ordered if count is None else ordered[:count]


def render(hot: HotPath, top: int, title: str) -> list[str]:
    """Markdown tables of the ``top`` rows of each view, ready to paste into a note."""
    total = hot.total_ms or 1.0

    def share(ms: float) -> str:
        return f"{ms / total * 100:.0f} %"

    lines = [
        f"### {title}",
        "",
        f"livekit-otel's own code: {hot.total_ms:.2f} ms per turn under cProfile, of "
        f"{hot.profiled_ms:.2f} ms per turn profiled in all ({hot.turns} turns; start and "
        "close spread over them). Shares are of our code's total. Calls per turn, which "
        f"the machine's load does not move: {hot.own_calls:.0f} of our functions, "
        f"{hot.outside_calls:.0f} from our code to outside functions.",
        "",
        f"Top {top} of our functions by cumulative own-code time (hand-backs to LiveKit excluded):",
        "",
        "| function | cumulative ms/turn | share | exclusive ms/turn | calls/turn |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in hot.functions[:top]:
        lines.append(
            f"| `{row.name}` | {row.ms:.3f} | {share(row.ms)} | {row.extra_ms:.3f} "
            f"| {row.calls:.1f} |"
        )
    lines += [
        "",
        "Where it ends up: our own lines, and the top outside functions our code calls:",
        "",
        "| callee | ms/turn | share | calls/turn |",
        "|---|---:|---:|---:|",
    ]
    for row in hot.callees[:top]:
        calls = f"{row.calls:.1f}" if row.calls else "-"
        lines.append(f"| `{row.name}` | {row.ms:.3f} | {share(row.ms)} | {calls} |")
    lines += [
        "",
        "By module (exclusive time: own lines and the outside calls they make):",
        "",
        "| module | ms/turn | share | calls/turn |",
        "|---|---:|---:|---:|",
    ]
    for row in hot.modules[:top]:
        lines.append(f"| `{row.name}` | {row.ms:.3f} | {share(row.ms)} | {row.calls:.1f} |")
    return lines
