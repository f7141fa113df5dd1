"""The OTLP/JSON-lines file exporter, now part of livekit-otel (``livekit_otel.setup.jsonfile``,
behind ``setup_file``); kept here so the dev kit's users import it as before."""

from livekit_otel.setup.jsonfile import OtlpJsonFileExporter, encode_otlp_json

__all__ = ["OtlpJsonFileExporter", "encode_otlp_json"]
