"""Setup, one call each: a ``TracerProvider`` (and a ``MeterProvider``) for any OTLP/HTTP
backend, Langfuse, or a Prometheus endpoint.

``setup_otlp`` and ``setup_langfuse`` build a tracer provider (``BatchSpanProcessor``
around an OTLP/HTTP protobuf exporter with gzip), hand it to
``livekit_otel.set_tracer_provider`` and return it. ``setup_otlp`` also builds a meter
provider whose ``PeriodicExportingMetricReader`` posts the metrics to the same backend
(``/v1/metrics``), unless ``metrics=False`` or ``OTEL_METRICS_EXPORTER=none``;
``installed_meter_provider()`` returns it. ``setup_langfuse`` sends no metrics: Langfuse
takes none. ``setup_prometheus`` serves the metrics for Prometheus to scrape and returns
its meter provider; while it serves, the metrics go there and ``setup_otlp`` sends traces
only. None of them writes to ``os.environ`` or sets a process-global OpenTelemetry
provider unless ``set_global=True``.

Calling a setup function again with the same settings returns the providers it already
built. Calling it with different settings (another endpoint, other headers or keys,
another resource or option) replaces them: the new ones are installed first, the old
ones are flushed and shut down in a background thread, and a warning says so.

Inside a LiveKit job the providers are flushed, within ``shutdown_timeout`` seconds, when
the job shuts down: LiveKit ends job processes with ``os._exit``, so ``atexit`` hooks
never run there. Providers built at import time are registered with each job as its
first session starts.

A bad setting (missing Langfuse keys, a URL without a scheme, malformed headers, a
non-positive timeout, a port out of range, ...) raises ``ValueError`` at import time or
worker start, so a deploy fails fast. Inside a running LiveKit job it never takes the call
down: the setup function logs one ERROR on the ``livekit_otel.setup.installed`` logger that
says what to fix, installs nothing, and returns a provider that records and exports nothing
(see ``disabled_provider``), so code that goes on to use the returned provider keeps
working. ``setup_prometheus`` follows the same rule in every process LiveKit starts for a
job, where module-level code runs again (see its docstring for the Prometheus port).

Modules: ``otlp`` (``setup_otlp``), ``langfuse`` (``setup_langfuse``), ``prometheus``
(``setup_prometheus`` and its HTTP endpoint), ``file`` (``setup_file``) and ``jsonfile`` (its
OTLP/JSON-lines exporter), ``installed`` (what is installed, the hand-off
to the instrumentor, the never-fail-a-job rule), ``settings`` (shared options, resource),
``exporters`` (the OTLP exporters and providers), ``endpoints`` (URLs, headers, addresses).
"""
