"""Instructions per turn, counted by valgrind: a figure that does not move with the machine.

Time on a shared machine moves by a fifth from minute to minute; the number of machine
instructions a turn executes moves far less. Each session runs in its own process under
valgrind's ``cachegrind`` (instruction counts only), with garbage collection off (where a
full pass falls would otherwise decide the count), once with ``--short`` and once with
``--long`` turns; the difference divided by the extra turns is the cost of a steady turn,
without imports and set-up. Each variant is compared with ``off``. The scripted call runs
on timers, so a session's count still moves by about 1 % from run to run, and the part
livekit-otel adds by about a tenth: compare changes over two runs or more. Instructions
are not time (system calls and cache misses are not in them): this says where the work
is and whether a change removed some; ``make bench`` says what it costs.

::

    python bench/instructions.py                                 # spans+metrics+content
    python bench/instructions.py --variants spans,unsampled      # several, each against off
    python bench/instructions.py --sdk     # the SDK alone: a span, an attribute, a data point

Needs valgrind (``apt-get install valgrind``); each pair of runs takes about a minute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from worker import FULL, VARIANTS_BY_NAME

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def counted(script: list[str]) -> int:
    """Instructions a Python process running ``script`` executed, counted by valgrind."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        *script,
    ]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment)
    found = REFS.search(run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run of {' '.join(script)} failed:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_unit(script: Callable[[int], list[str]], few: int, many: int) -> float:
    """Instructions of one more unit (a turn, a span): ``script(many)`` over ``script(few)``,
    both run at once, divided by the extra units; imports and set-up cancel out."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda count: counted(script(count)), (few, many))
    return (second - first) / (many - few)


def per_turn(config: str, short: int, long: int) -> float:
    """Instructions of one steady turn of a ``config`` session."""
    worker = str(BENCH / "worker.py")
    return per_unit(
        lambda turns: [worker, "--config", config, "--turns", str(turns), "--no-gc"], short, long
    )


def sdk_unit(unit: str) -> float:
    """Instructions of one ``sdk_unit.py`` unit: a span or a data point."""
    return per_unit(lambda count: [str(BENCH / "sdk_unit.py"), unit, str(count)], 1000, 6000)


def sdk() -> None:
    """What the SDK itself costs per span, per attribute and per metric data point."""
    bare = sdk_unit("span")
    full = sdk_unit("span32")
    point = sdk_unit("point")
    print(f"a span started and ended, no attribute: {bare:,.0f} instructions")
    print(f"each attribute given at its start: {(full - bare) / 32:,.0f} instructions")
    print(f"a histogram data point with four attributes: {point:,.0f} instructions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=FULL, help=f"comma-separated ({FULL})")
    parser.add_argument("--short", type=int, default=20, help="turns of the short session (20)")
    parser.add_argument("--long", type=int, default=80, help="turns of the long session (80)")
    parser.add_argument("--sdk", action="store_true", help="the SDK's own unit costs instead")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    if args.sdk:
        sdk()
        return 0
    names = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(names) - set(VARIANTS_BY_NAME))
    if unknown or args.long <= args.short:
        raise SystemExit(
            f"choose variants from {', '.join(VARIANTS_BY_NAME)}, and --long above --short"
        )
    off = per_turn("off", args.short, args.long)
    print(f"off: {off / 1e6:.2f} M instructions per turn")
    for name in names:
        traced = per_turn(name, args.short, args.long)
        added = traced - off
        print(
            f"{name}: {traced / 1e6:.2f} M per turn, {added / 1e6:+.3f} M over off "
            f"({100 * added / off:+.1f} %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
