"""Recording: the state and timing of each traced session (second step of the flow).

A session's recorder keeps its open spans, the metrics waiting for them and its totals,
and turns what the hooks saw into typed facts for the mapping.
"""
