"""Setup: providers, exporters and endpoints a user asks for (``setup_otlp``, ``setup_langfuse``,
``setup_prometheus``); they hand their providers to the instrumentor."""
