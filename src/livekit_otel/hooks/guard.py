"""The one fault guard every hook goes through, and what every hook shares.

A failure of livekit-otel itself never reaches the agent: each piece of our own code that
a hook runs goes through :meth:`Guard.call`, which reports a fault once, under the hook's
own name, and returns ``None``. LiveKit's function is then called exactly once, by the
hook, outside any ``except`` block. Callbacks and timers that run later (a speech
handle's done callback, a bounded wait) go through :meth:`Guard.callback`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Tracer

from ..config import Options
from ..mapping.instruments import Instruments

logger = logging.getLogger("livekit_otel")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
Result = TypeVar("Result")


@dataclass(frozen=True)
class Hook:
    """One place livekit-otel wraps, and what the trace loses on a release without it."""

    module: str
    attribute: str
    """``Class.method`` or a module-level function name, as ``wrapt`` takes it."""
    feature: str
    """What the hook feeds, as the warning for a missing hook names it."""
    loses: str
    """What a trace lacks when the installed release has no such attribute."""
    factory: Callable[[State, Hook], Wrapper]
    """Makes the wrapper; it receives this entry, so faults are reported under its name."""

    @property
    def name(self) -> str:
        """The name faults are reported under."""
        return self.attribute

    def exists(self) -> bool:
        """Whether the installed release has this attribute."""
        try:
            target: Any = importlib.import_module(self.module)
        except ImportError:
            return False
        for part in self.attribute.split("."):
            target = getattr(target, part, None)
            if target is None:
                return False
        return True

    def owner(self) -> tuple[Any, str]:
        """The object holding the wrapped attribute, and the attribute's own name."""
        owner: Any = importlib.import_module(self.module)
        owner_path, _, name = self.attribute.rpartition(".")
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part)
        return owner, name


class Guard:
    """Contains every fault of livekit-otel's own code and reports each place once."""

    def __init__(self) -> None:
        self._reported: set[str] = set()

    def report(self, name: str) -> None:
        """Log the fault being handled, once per ``name``, with its traceback."""
        if name in self._reported:
            return
        self._reported.add(name)
        logger.warning(
            "livekit-otel failed inside its %s hook; the agent is unaffected and this hook "
            "may record less from now on",
            name,
            exc_info=True,
        )

    def call(self, hook: Hook, function: Callable[..., Result], *args: Any) -> Result | None:
        """``function(*args)``, or ``None`` after reporting its fault under ``hook``'s name."""
        try:
            return function(*args)
        except Exception:
            self.report(hook.name)
            return None

    def callback(self, function: Callable[..., None]) -> Callable[..., None]:
        """``function`` made safe to hand to LiveKit or asyncio as a callback or timer."""
        named = getattr(function, "func", function)  # a functools.partial names its function
        name = getattr(named, "__qualname__", "callback")

        def guarded(*args: Any) -> None:
            try:
                function(*args)
            except Exception:
                self.report(name)

        return guarded


class State:
    """What every hook shares: where spans and metrics go, the options, the guard."""

    def __init__(
        self,
        tracer: Tracer,
        provider: trace.TracerProvider | None,
        options: Options,
        instruments: Instruments,
    ) -> None:
        self.tracer = tracer
        self.provider = provider
        self.options = options
        self.instruments = instruments
        self.guard = Guard()


def task_error(task: Any) -> BaseException | None:
    """The exception a finished task raised, or ``None`` (also when it was cancelled)."""
    if task.cancelled():
        return None
    error = task.exception()
    return error if isinstance(error, BaseException) else None
