"""The instrumented library and the range of it livekit-otel supports."""

# checked by BaseInstrumentor before instrumenting; releases newer than the tested range
# are instrumented with a warning (see compat.check_supported), so no upper bound here
_instruments = ("livekit-agents >= 1.3.6",)
