"""A real LiveKit voice agent traced into Langfuse.

Needs a LiveKit server and provider keys (this one is not offline)::

    pip install livekit-otel "livekit-agents[openai,deepgram,cartesia,silero]"
    export LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    export OPENAI_API_KEY=... DEEPGRAM_API_KEY=... CARTESIA_API_KEY=...
    export LANGFUSE_PUBLIC_KEY=pk-lf-... LANGFUSE_SECRET_KEY=sk-lf-...
    export LANGFUSE_HOST=https://cloud.langfuse.com
    python examples/langfuse_agent.py dev

Each call appears in Langfuse as one trace in its own session: generations for the LLM
calls (model, tokens, prompt and answer), tool observations, and per-turn latency on
every ``agent_turn``.
"""

from __future__ import annotations

from livekit.agents import Agent, AgentSession, JobContext, RunContext, WorkerOptions, cli
from livekit.agents.llm import function_tool
from livekit.plugins import cartesia, deepgram, openai, silero

from livekit_otel import setup_langfuse, update_session

# At module level: a missing key stops the worker as it starts, and each job's spans
# are still flushed when the job ends.
setup_langfuse()  # reads LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST


class Concierge(Agent):
    """A small voice concierge with one tool."""

    def __init__(self) -> None:
        super().__init__(
            instructions="You are a friendly concierge. Keep answers short; use tools for facts."
        )

    @function_tool
    async def lookup_weather(self, context: RunContext, location: str) -> str:
        """Look up today's weather for a city.

        Args:
            location: the city name
        """
        return f"It is sunny and 21 degrees in {location}."


async def entrypoint(ctx: JobContext) -> None:
    """The job entrypoint: the session, traced by the setup above."""
    session: AgentSession = AgentSession(
        vad=silero.VAD.load(),
        stt=deepgram.STT(model="nova-3"),
        llm=openai.LLM(model="gpt-4o-mini"),
        tts=cartesia.TTS(),
    )
    update_session(session, tags=["example", "concierge"], metadata={"example": "langfuse"})
    await session.start(agent=Concierge(), room=ctx.room)
    await ctx.connect()
    participant = await ctx.wait_for_participant()
    update_session(session, user_id=participant.identity)


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint))
