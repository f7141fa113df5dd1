"""What outlives one session: the registry of open sessions and the job-shutdown flush.

Both the setup functions and the instrumentor use this module; it imports neither. LiveKit
ends job processes with ``os._exit``, so ``atexit`` hooks never run there: a provider
(tracer or meter provider) is flushed, within a bound, from the job's shutdown callbacks
instead. A provider built outside any job (at import, as the README recommends) is
registered with each job when the job's first session starts: the setup functions list
their providers with ``flush_at_every_job_end``, and ``register_flush_on_shutdown``, which
the instrumentor calls at every session start, registers them with the running job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from opentelemetry.sdk.metrics import MeterProvider

from ..audio import runtime as audio_runtime

logger = logging.getLogger("livekit_otel.bootstrap")

DEFAULT_SHUTDOWN_TIMEOUT = 3.0

ShutdownCallback = Callable[[str], Coroutine[Any, Any, None]]

# the name LiveKit gives its job processes (``ipc/job_proc_executor.py``, 1.3.6 to 1.8)
JOB_PROCESS_NAME = "job_proc"


class Flushable(Protocol):
    """A tracer or meter provider: what a job-shutdown flush needs of it."""

    def force_flush(self, timeout_millis: int) -> bool:
        """Export what is pending within ``timeout_millis``; ``False`` (or an exception)
        when that failed."""


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
# providers the setup functions built, flushed at the end of every job: id -> (ref, bound)
_every_job: dict[int, tuple[weakref.ref[Any], float]] = {}


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


async def wait_for_audio(deadline: float) -> None:
    """Wait until the spans held for their audio (the root, for the call recording) have
    ended, at most until ``deadline`` (the loop's time)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and not audio_runtime.idle():
        await asyncio.sleep(0.02)


def flush_on_shutdown(
    provider: Flushable, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
) -> ShutdownCallback:
    """Build a LiveKit job shutdown callback that flushes ``provider`` within ``timeout`` s.

    ``provider`` is a tracer provider or a meter provider. The callback takes the shutdown
    reason LiveKit passes (and works without one). The flush runs in a daemon thread, so
    the event loop keeps running and a hung backend costs at most ``timeout`` seconds;
    spans or metrics still unsent then are given up. A meter provider's ``force_flush``
    raises when an export fails: that is logged, never raised.
    """
    signal = "metrics" if isinstance(provider, MeterProvider) else "spans"

    async def flush(reason: str = "") -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # LiveKit closes the job's sessions in another shutdown callback, at the same time
        # as this one: give their last spans (session_close, agent_session) a chance first
        await wait_for_open_sessions(timeout / 2)
        await wait_for_audio(started + timeout * 0.8)
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
                logger.warning("livekit-otel: flushing %s failed (%s)", signal, type(exc).__name__)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(resolve, flushed)

        threading.Thread(target=work, name="livekit-otel-flush", daemon=True).start()
        try:
            flushed = await asyncio.wait_for(done, remaining)
        except asyncio.TimeoutError:
            logger.warning(
                "livekit-otel: flushing %s at job shutdown (reason: %s) did not finish "
                "within %.1f s; %s not yet sent may be lost",
                signal,
                reason or "unknown",
                timeout,
                signal,
            )
            return
        if not flushed:
            logger.debug("livekit-otel: the %s provider did not flush (already shut down?)", signal)

    flush.__name__ = flush.__qualname__ = "livekit_otel_flush_on_shutdown"
    return flush


def flush_at_every_job_end(provider: Flushable, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
    """Flush ``provider`` within ``timeout`` s at the end of every job of this process.

    Takes effect at the next ``register_flush_on_shutdown`` inside a job (the instrumentor
    calls it as each session starts); ``stop_flushing`` undoes it. Holds ``provider``
    weakly.
    """
    with _lock:
        _every_job[id(provider)] = (weakref.ref(provider), timeout)


def stop_flushing(provider: Flushable) -> None:
    """Forget a provider given to ``flush_at_every_job_end`` (it was replaced)."""
    with _lock:
        entry = _every_job.get(id(provider))
        if entry is not None and entry[0]() in (provider, None):
            del _every_job[id(provider)]


def register_flush_on_shutdown(
    provider: Flushable, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
) -> bool:
    """Flush ``provider`` when the current LiveKit job shuts down, once per job.

    Also registers, once per job, every provider listed with ``flush_at_every_job_end``,
    each with its own bound (which wins over ``timeout`` when ``provider`` is one of
    them). Returns ``True`` when called inside a job (the callbacks are registered, or
    already were), ``False`` outside one. The job context is looked up on each call
    through ``livekit.agents.get_job_context``.
    """
    ctx = _current_job_context()
    if ctx is None:
        return False
    with _lock:
        standing = [(ref(), bound) for ref, bound in _every_job.values()]
    for listed, bound in standing:
        if listed is not None:
            _register(ctx, listed, bound)
    _register(ctx, provider, timeout)
    return True


def _register(ctx: Any, provider: Flushable, timeout: float) -> None:
    """Add the flush of ``provider`` to ``ctx``'s shutdown callbacks unless it is there."""
    with _lock:
        try:
            seen = _flushing_jobs.setdefault(ctx, set())
        except TypeError:  # a context that cannot be weakly referenced: no deduplication
            seen = set()
        if id(provider) in seen:
            return
        seen.add(id(provider))
    ctx.add_shutdown_callback(flush_on_shutdown(provider, timeout))


def in_job_process() -> bool:
    """Whether this process runs (or was started to run) a LiveKit job.

    True inside a running job (in a process of its own, or in a thread of the worker), and
    in the process LiveKit starts for a job even before the job: that process imports the
    agent's main module again (``multiprocessing`` spawn and forkserver), so module-level
    setup code runs there too, outside any job context.
    """
    return _current_job_context() is not None or is_job_process()


def is_job_process() -> bool:
    """Whether this is a process LiveKit started for a job (not a thread of the worker)."""
    return multiprocessing.current_process().name == JOB_PROCESS_NAME


def in_child_process() -> bool:
    """Whether this is a process started by ``multiprocessing`` (a LiveKit job or inference
    process, which import the agent's main module again), not the one the user started."""
    return multiprocessing.current_process().name != "MainProcess"


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
