"""The options every setup function shares, the resource they describe, and digests of both.

A digest (``fingerprint``) tells a repeated setup call with the same settings from one with
other settings; it holds no secret in clear.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.util.types import AttributeValue

from livekit_otel.config import InvalidOptionError, resolve_options
from livekit_otel.setup.endpoints import ExportTarget

DEFAULT_SERVICE_NAME = "livekit-agent"


@dataclass(frozen=True)
class SetupOptions:
    """The options the setup functions share."""

    service_name: str | None
    resource_attributes: Mapping[str, AttributeValue] | None
    set_global: bool
    timeout: float | None
    shutdown_timeout: float
    instrument_options: Mapping[str, Any] | None


def setup_options(
    service_name: str | None,
    resource_attributes: Mapping[str, AttributeValue] | None,
    set_global: bool,
    timeout: float | None,
    shutdown_timeout: float,
    instrument_options: Mapping[str, Any] | None,
) -> SetupOptions:
    """Check the shared options and bundle them.

    ``instrument_options`` are checked as ``instrument()`` checks them, so a wrong one
    fails the setup call (at import or worker start) rather than the first session.
    """
    if service_name is not None and not isinstance(service_name, str):
        raise ValueError(
            f"service_name must be a string such as 'my-agent', not a {type(service_name).__name__}"
        )
    if resource_attributes is not None and not isinstance(resource_attributes, Mapping):
        raise ValueError(
            "resource_attributes must be a dict of attribute names to values, such as "
            f"{{'deployment.environment': 'prod'}}, not a {type(resource_attributes).__name__}"
        )
    if not isinstance(set_global, bool):
        raise ValueError(f"set_global must be True or False, not {set_global!r}")
    _check_instrument_options(instrument_options)
    if timeout is not None and not _positive_seconds(timeout):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if not _positive_seconds(shutdown_timeout):
        raise ValueError(
            f"shutdown_timeout must be a positive number of seconds, not {shutdown_timeout!r}"
        )
    return SetupOptions(
        service_name=service_name,
        resource_attributes=resource_attributes,
        set_global=set_global,
        timeout=timeout,
        shutdown_timeout=shutdown_timeout,
        instrument_options=instrument_options,
    )


def _check_instrument_options(instrument_options: object) -> None:
    """``instrument_options`` as ``instrument()`` would take them, or a ``ValueError``."""
    if instrument_options is None:
        return
    if not isinstance(instrument_options, Mapping):
        raise ValueError(
            "instrument_options must be a dict of instrument() options, such as "
            f"{{'capture_content': False}}, not a {type(instrument_options).__name__}"
        )
    if "tracer_provider" in instrument_options:
        raise ValueError(
            "instrument_options cannot hold tracer_provider: the setup function builds the "
            "tracer provider (to use your own, call livekit_otel.set_tracer_provider instead)"
        )
    options = {
        name: value for name, value in instrument_options.items() if name != "meter_provider"
    }
    try:
        resolve_options(**options)
    except InvalidOptionError as error:
        raise ValueError(f"instrument_options: {error}") from None


def _positive_seconds(value: object) -> bool:
    """True for a finite number of seconds above zero (``True``/``False`` are not numbers)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def build_resource(
    service_name: str | None, resource_attributes: Mapping[str, AttributeValue] | None
) -> Resource:
    """The resource: arguments over ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``.

    When nothing names the service, ``service.name`` is ``"livekit-agent"`` instead of
    the SDK's ``unknown_service``.
    """
    attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
    if service_name:
        attributes[SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    detected = str(resource.attributes.get(SERVICE_NAME, ""))
    if SERVICE_NAME not in attributes and detected.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def fingerprint(
    target: ExportTarget,
    resource: Resource,
    options: SetupOptions,
    metrics_target: ExportTarget | None,
) -> str:
    """A digest of everything that shapes the providers; holds no secret in clear."""
    metrics_settings = None
    if metrics_target is not None:
        metrics_settings = (metrics_target.url, sorted(metrics_target.headers.items()))
    return digest(
        (
            target.url,
            sorted(target.headers.items()),
            attributes_digest(resource),
            options.set_global,
            options.timeout,
            options_digest(options.instrument_options),
            metrics_settings,
        )
    )


def digest(settings: object) -> str:
    """A SHA-256 digest of ``settings``' repr."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()


def attributes_digest(resource: Resource) -> list[tuple[str, str]]:
    """The resource's attributes in a stable order, for a digest."""
    return sorted((key, repr(value)) for key, value in resource.attributes.items())


def options_digest(options: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``instrument_options`` in a stable order, for a digest."""
    return sorted((key, repr(value)) for key, value in (options or {}).items())
