"""Which families write each fact, chosen once, and the helpers that hand a fact to them all.

:class:`FactSetters` keeps, for each fact (a setter of :class:`~.keys.Keys`), the bound
setters of the families in force that write it; a fact no family in force writes costs
nothing per span. ``Conventions`` builds on it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ...config import Options
from .. import attributes as attr
from .. import content
from ..facts import Cost, Usage
from .genai_keys import GenAiKeys
from .keys import Attributes, Keys, overridden
from .langfuse_keys import LangfuseKeys
from .livekit_keys import LiveKitKeys
from .openinference_keys import OpenInferenceKeys
from .providers import provider_name


def families(options: Options) -> list[Keys]:
    """The convention families in force, the contract's own keys first."""
    chosen = options.conventions
    text_carried = bool({"langfuse", "openinference"} & chosen)
    written: list[Keys] = [
        LiveKitKeys(
            text_carried,
            text_carried or "genai" in chosen,
            total_carried="langfuse" in chosen,
            transcript_carried="langfuse" in chosen,
        )
    ]
    if "langfuse" in chosen:
        written.append(LangfuseKeys(options))
    if "openinference" in chosen:
        written.append(OpenInferenceKeys(options))
    if "genai" in chosen:
        written.append(GenAiKeys())
    return written


class FactSetters:
    """Each fact's setters in the families in force, and one helper per fact that calls them."""

    def __init__(self, options: Options, written: list[Keys]) -> None:
        self.options = options
        self.capture = options.capture_content

        def each(name: str) -> tuple[Callable[..., None], ...]:
            return tuple(getattr(family, name) for family in written if overridden(family, name))

        self._session = each("session")
        self._trace = each("trace")
        self._metadata = each("metadata")
        self._kind = each("kind")
        self._agent = each("agent")
        self._invoke_agent = each("invoke_agent")
        self._model = each("model")
        self._model_parameters = each("model_parameters")
        self._usage = each("usage")
        self._realtime_usage = each("realtime_usage")
        self._finish_reason = each("finish_reason")
        self._completion_start = each("completion_start")
        self._tool = each("tool")
        self._tool_io = each("tool_io")
        self._text_io = each("text_io")
        self._prompt = each("prompt")
        self._completion = each("completion")
        self._dialogue = each("dialogue")
        self._trace_io = each("trace_io")
        self._warning = each("warning")
        self._audio_reference = each("audio_reference")
        self._cost = each("cost")
        self._speech_usage = each("speech_usage")
        self._call = each("call")
        self._transcript = each("transcript")

    # -- one fact, every family in force ------------------------------------------------
    def _set_kind(self, values: Attributes, kind: str) -> None:
        for write in self._kind:
            write(values, kind)

    def _set_model(self, values: Attributes, model: str | None, provider: str | None) -> None:
        name = provider_name(provider) if provider else None
        for write in self._model:
            write(values, model, name)

    def _set_completion_start(self, values: Attributes, first: float | None) -> None:
        if first is not None and self._completion_start:
            iso = datetime.fromtimestamp(first, tz=timezone.utc).isoformat()
            for write in self._completion_start:
                write(values, iso)

    def _set_cost(self, values: Attributes, cost: Cost) -> None:
        for write in self._cost:
            write(values, cost)

    def _set_speech_usage(self, values: Attributes, usage: Usage | None, cost: Cost | None) -> None:
        """STT or TTS usage and, where priced, its cost."""
        if usage is not None:
            for write in self._speech_usage:
                write(values, usage)
        if cost is not None:
            self._set_cost(values, cost)

    def _set_warning(self, values: Attributes, message: str) -> None:
        for write in self._warning:
            write(values, message)

    def _set_reply(self, values: Attributes, text: str, tool_calls: Any) -> None:
        """A generation's output: the assistant message, with its tool calls."""
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = content.tool_call_messages(tool_calls)
        said = content.to_json(message, self.options)
        for write in self._completion:
            write(values, said, attr.LK_LLM_OUTPUT_MESSAGES)

    def _set_dialogue(
        self,
        values: Attributes,
        user_text: str | None,
        agent_text: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        if not self.capture:
            return
        heard = content.limit(user_text, self.options) if user_text else None
        said = content.limit(agent_text, self.options) if agent_text else None
        if heard is None and said is None:
            return
        for write in self._dialogue:
            write(values, heard, said, lk_input, lk_output)
