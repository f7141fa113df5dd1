"""The package tells type checkers that it ships type hints (PEP 561)."""

from __future__ import annotations

from importlib.resources import files


def test_package_has_the_py_typed_marker() -> None:
    assert (files("livekit_otel") / "py.typed").is_file()
