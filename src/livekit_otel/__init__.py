"""livekit-otel (work in progress)."""
