"""The OpenTelemetry GenAI conventions' keys (``gen_ai.*``) beyond those the contract writes."""

from __future__ import annotations

from .. import attributes as attr
from ..facts import ToolCall
from .keys import Attributes, Keys, messages


class GenAiKeys(Keys):
    """Writes each fact under the key the GenAI semantic conventions define for it."""

    def agent(self, values: Attributes, name: str) -> None:
        values[attr.GEN_AI_AGENT_NAME] = name

    def invoke_agent(self, values: Attributes) -> None:
        values[attr.GEN_AI_OPERATION_NAME] = attr.GEN_AI_OPERATION_INVOKE_AGENT

    def finish_reason(self, values: Attributes, reason: str) -> None:
        values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]

    def tool(self, values: Attributes, call: ToolCall) -> None:
        values[attr.GEN_AI_TOOL_TYPE] = "function"

    def tool_io(self, values: Attributes, arguments: str, result: str) -> None:
        values[attr.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments
        values[attr.GEN_AI_TOOL_CALL_RESULT] = result

    def prompt(self, values: Attributes, messages: str, lk_key: str) -> None:
        values[attr.GEN_AI_INPUT_MESSAGES] = messages

    def completion(self, values: Attributes, message: str, lk_key: str) -> None:
        # the GenAI conventions take a list of output messages
        values[attr.GEN_AI_OUTPUT_MESSAGES] = "[" + message + "]"

    def dialogue(
        self,
        values: Attributes,
        heard: str | None,
        said: str | None,
        lk_input: str | None,
        lk_output: str | None,
    ) -> None:
        if heard is not None:
            values[attr.GEN_AI_INPUT_MESSAGES] = messages("user", heard)
        if said is not None:
            values[attr.GEN_AI_OUTPUT_MESSAGES] = messages("assistant", said)
