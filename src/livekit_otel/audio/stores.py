"""Where clips and recordings are kept: a directory, or a callable of the user's."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union

StoreCallable = Callable[[bytes, str], str]
AudioStoreOption = Union[str, "os.PathLike[str]", StoreCallable]


@dataclass(frozen=True)
class Placement:
    """Which span a piece of audio belongs to, and in which of its fields."""

    trace_id: str
    """32 hex digits."""
    span_id: str
    """16 hex digits."""
    field: str
    """``input`` (a user turn) or ``output`` (an agent turn, the call)."""
    name: str
    """A file name for it, unique in the process (``<trace>-<span>-<kind>.ogg``)."""


class AudioStore(Protocol):
    """Keeps audio bytes and says where they are."""

    def put(self, data: bytes, placement: Placement) -> str:
        """Store ``data``; return its URI."""


class DirectoryStore:
    """Writes each clip as a file in ``directory``; its URI is a ``file://`` URI."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().resolve()

    def put(self, data: bytes, placement: Placement) -> str:
        """Write ``data`` to ``directory/name`` (creating the directory) and return its URI."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / placement.name
        path.write_bytes(data)
        return path.as_uri()

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.directory)!r})"


class CallableStore:
    """Hands each clip to the user's ``store(data, name) -> uri``."""

    def __init__(self, store: StoreCallable) -> None:
        self.store = store

    def put(self, data: bytes, placement: Placement) -> str:
        """Call the user's store; its answer is the URI."""
        return str(self.store(data, placement.name))


def resolve_store(value: object) -> AudioStore | None:
    """The store an ``audio_store`` option names: a directory path, or a callable."""
    if value is None:
        return None
    if isinstance(value, (DirectoryStore, CallableStore)):
        return value
    if isinstance(value, (str, os.PathLike)):
        if not str(value).strip():
            raise ValueError("audio_store must be a directory path or a callable, got ''")
        return DirectoryStore(value)
    if callable(value):
        return CallableStore(value)
    raise TypeError(
        "audio_store must be a directory path or a callable(bytes, name) -> uri, "
        f"got {type(value).__name__}"
    )
