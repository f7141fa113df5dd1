"""A sample agent with two function tools: one that answers and one that raises."""

from __future__ import annotations

from typing import Any

from livekit.agents import Agent, function_tool

__all__ = ["DEFAULT_INSTRUCTIONS", "ScriptedAgent", "book_table", "lookup_weather"]

DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant. Answer briefly."


@function_tool
async def lookup_weather(location: str) -> str:
    """Look up the current weather for a location.

    Args:
        location: The city or place to look up.
    """
    return f"It is sunny and 21 degrees in {location}"


@function_tool
async def book_table(restaurant: str, people: int = 2) -> str:
    """Book a table at a restaurant. Always fails (it exercises the tool error path).

    Args:
        restaurant: The restaurant's name.
        people: How many people the table is for.
    """
    raise RuntimeError(f"no table for {people} available at {restaurant}")


class ScriptedAgent(Agent):
    """An `Agent` with the sample tools `lookup_weather` and `book_table` by default."""

    def __init__(
        self, *, instructions: str = DEFAULT_INSTRUCTIONS, tools: list[Any] | None = None
    ) -> None:
        super().__init__(
            instructions=instructions,
            tools=[lookup_weather, book_table] if tools is None else tools,
        )
