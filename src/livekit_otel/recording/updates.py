"""Per-session settings a user sets from the agent's code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .recorder import recorder_of, was_traced

_PENDING_ATTRIBUTE = "_livekit_otel_pending"


def update_session(
    session: Any,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Iterable[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Set the user id, tags and metadata (and, before ``start``, the session id) of a session.

    Before ``session.start()`` the values are kept for the session's trace; on a running
    session they apply to its ``agent_session`` span and every span opened from then on.
    ``session_id`` can only be chosen before the session starts.
    """
    recorder = recorder_of(session)
    if recorder is None:
        if was_traced(session):
            return  # the session is closed
        pending = dict(getattr(session, _PENDING_ATTRIBUTE, None) or {})
        if user_id is not None:
            pending["user_id"] = user_id
        if session_id is not None:
            pending["session_id"] = session_id
        if tags is not None:
            pending["tags"] = [*pending.get("tags", []), *tags]
        if metadata:
            pending["metadata"] = {**pending.get("metadata", {}), **metadata}
        setattr(session, _PENDING_ATTRIBUTE, pending)
        return
    if session_id is not None and session_id != recorder.facts.session_id:
        raise ValueError("session_id can only be set before session.start()")
    recorder.update(user_id=user_id, tags=tags, metadata=metadata)
