"""What the audio of every session in a process shares: the worker and the Langfuse uploader."""

from __future__ import annotations

import threading
from collections.abc import Collection

from .langfuse import LangfuseMedia
from .session import AudioSettings
from .stores import resolve_store
from .worker import AudioWorker

_lock = threading.Lock()
_worker: AudioWorker | None = None
_langfuse: LangfuseMedia | None = None


def shared_worker() -> AudioWorker:
    """The process's audio worker (its thread starts with the first job)."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = AudioWorker()
        return _worker


def use_langfuse(media: LangfuseMedia | None) -> None:
    """Upload audio to this Langfuse project from now on (``setup_langfuse`` calls it)."""
    global _langfuse
    _langfuse = media


def langfuse_media() -> LangfuseMedia | None:
    """The Langfuse uploader in force, if ``setup_langfuse`` made one."""
    return _langfuse


def settings_for(
    kinds: Collection[str], store: object, inline: bool, to_langfuse: bool
) -> AudioSettings:
    """The audio settings of a session from the options (``to_langfuse``: the Langfuse
    conventions are on, so audio goes to Langfuse when an uploader is in force)."""
    return AudioSettings(
        turns="turns" in kinds,
        call="call" in kinds,
        store=resolve_store(store),
        langfuse=_langfuse if to_langfuse else None,
        inline=inline and to_langfuse,
    )


def idle() -> bool:
    """Whether the audio worker has nothing left to do (spans waiting for audio ended)."""
    return _worker is None or _worker.idle()
