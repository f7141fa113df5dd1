"""What outlives one session: the registry of open sessions and the job-shutdown flush.

Both the bootstrap and the instrumentor use this module; it imports neither. LiveKit
ends job processes with ``os._exit``, so ``atexit`` hooks never run there: a provider
is flushed, within a bound, from the job's shutdown callbacks instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("livekit_otel.bootstrap")

DEFAULT_SHUTDOWN_TIMEOUT = 3.0

ShutdownCallback = Callable[[str], Coroutine[Any, Any, None]]


class OpenSession(Protocol):
    """A traced session as the registry sees it."""

    closed: bool

    def abandon(self, reason: str) -> None:
        """End the session's trace now, whatever is still open."""


_lock = threading.Lock()
# sessions not yet closed, so a job-shutdown flush can wait for their last spans
_open_sessions: weakref.WeakSet[Any] = weakref.WeakSet()
# job contexts that already flush a given provider on shutdown: ctx -> {id(provider)}
_flushing_jobs: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()


def session_opened(session: OpenSession) -> None:
    """Register a traced session until it closes."""
    _open_sessions.add(session)


def close_open_sessions(reason: str) -> None:
    """End the traces of sessions still running (``uninstrument`` while a call is live)."""
    for session in list(_open_sessions):
        if session.closed:
            continue
        try:
            session.abandon(reason)
        except Exception:
            session.closed = True
            logger.warning("livekit-otel failed to end a live session's trace", exc_info=True)


async def wait_for_open_sessions(timeout: float) -> None:
    """Wait, at most ``timeout`` seconds, until every traced session has closed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(session.closed for session in list(_open_sessions)):
            return
        await asyncio.sleep(0.02)


def flush_on_shutdown(
    provider: TracerProvider, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
) -> ShutdownCallback:
    """Build a LiveKit job shutdown callback that flushes ``provider`` within ``timeout`` s.

    The callback takes the shutdown reason LiveKit passes (and works without one). The
    flush runs in a daemon thread, so the event loop keeps running and a hung backend
    costs at most ``timeout`` seconds; spans still unsent then are given up.
    """

    async def flush(reason: str = "") -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # LiveKit closes the job's sessions in another shutdown callback, at the same time
        # as this one: give their last spans (session_close, agent_session) a chance first
        await wait_for_open_sessions(timeout / 2)
        remaining = max(timeout - (loop.time() - started), 0.1)
        done: asyncio.Future[bool] = loop.create_future()

        def resolve(flushed: bool) -> None:
            if not done.done():
                done.set_result(flushed)

        def work() -> None:
            flushed = False
            try:
                flushed = provider.force_flush(timeout_millis=int(remaining * 1000))
            except Exception as exc:
                logger.warning("livekit-otel: flushing spans failed (%s)", type(exc).__name__)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(resolve, flushed)

        threading.Thread(target=work, name="livekit-otel-flush", daemon=True).start()
        try:
            flushed = await asyncio.wait_for(done, remaining)
        except asyncio.TimeoutError:
            logger.warning(
                "livekit-otel: flushing spans at job shutdown (reason: %s) did not finish "
                "within %.1f s; spans not yet sent may be lost",
                reason or "unknown",
                timeout,
            )
            return
        if not flushed:
            logger.debug("livekit-otel: the tracer provider did not flush (already shut down?)")

    flush.__name__ = flush.__qualname__ = "livekit_otel_flush_on_shutdown"
    return flush


def register_flush_on_shutdown(
    provider: TracerProvider, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
) -> bool:
    """Flush ``provider`` when the current LiveKit job shuts down, once per job.

    Returns ``True`` when called inside a job (the callback is registered, or already
    was), ``False`` outside one. The job context is looked up on each call through
    ``livekit.agents.get_job_context``.
    """
    ctx = _current_job_context()
    if ctx is None:
        return False
    with _lock:
        try:
            seen = _flushing_jobs.setdefault(ctx, set())
        except TypeError:  # a context that cannot be weakly referenced: no deduplication
            seen = set()
        if id(provider) in seen:
            return True
        seen.add(id(provider))
    ctx.add_shutdown_callback(flush_on_shutdown(provider, timeout))
    return True


def _current_job_context() -> Any | None:
    """The running LiveKit job's context, or ``None`` outside a job.

    Looked up at call time (so tests can patch ``livekit.agents.get_job_context``) and
    only when ``livekit.agents`` is already imported: a job cannot run without it.
    """
    agents = sys.modules.get("livekit.agents")
    get_job_context = getattr(agents, "get_job_context", None)
    if get_job_context is None:
        return None
    try:
        return get_job_context()
    except RuntimeError:
        return None
