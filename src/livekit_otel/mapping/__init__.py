"""Mapping: typed facts to attributes and metrics (third step of the flow).

``facts`` holds what a span says; ``conventions`` writes it under every convention in force;
``instruments`` records the OpenTelemetry metrics; ``attributes`` names every key.
"""
