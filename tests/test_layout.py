"""The package's rooms show its flow: hooks -> recording -> mapping, setup on top.

Read from the source with ``ast``: a module never imports from a layer above its own, and
no class is over 300 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "livekit_otel"

# bottom to top; a module may import from its own layer and the ones below
LAYERS = {
    "compat": 0,
    "config": 0,
    "version": 0,
    "package": 0,
    "mapping": 1,
    "audio": 1,
    "recording": 2,
    "hooks": 3,
    "instrumentor": 4,
    "terminal": 4,
    "setup": 5,
    "view": 6,
    "__init__": 6,
}


def room(module: str) -> str:
    """The first part of a module's dotted name below ``livekit_otel``."""
    return module.split(".")[0]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imported(module: str, path: Path) -> set[str]:
    """The livekit_otel modules ``module`` imports, as dotted names below the package."""
    if path.parent == PACKAGE:
        package: list[str] = []
    elif path.name == "__init__.py":
        package = module.split(".")
    else:
        package = module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("livekit_otel"):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                names.add(".".join(target))
            else:  # from . import a, b
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("livekit_otel."):
                    names.add(alias.name.split(".", 1)[1])
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_a_module_imports_nothing_from_a_layer_above_it(module: str, path: Path) -> None:
    assert room(module) in LAYERS, f"add {room(module)!r} to LAYERS in tests/test_layout.py"
    above = sorted(
        name for name in imported(module, path) if LAYERS[room(name)] > LAYERS[room(module)]
    )
    assert above == []


def test_every_room_is_in_the_layer_table() -> None:
    assert {room(module) for module, _ in modules()} <= set(LAYERS)


MAX_CLASS_LINES = 300


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_class_is_over_300_lines(module: str, path: Path) -> None:
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert long == []
