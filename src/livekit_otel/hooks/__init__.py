"""Hooks: the thin, guarded wrappers of LiveKit functions (first step of the flow).

Each hook sees one LiveKit call or event, hands what it sees to the session's recording,
and calls LiveKit's function exactly once. ``table`` lists every hook.
"""
