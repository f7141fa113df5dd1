"""Facts to attributes, one module per convention family.

``keys`` names the facts (one setter each); ``livekit_keys`` writes the trace contract's own
keys, ``langfuse_keys``, ``openinference_keys`` and ``genai_keys`` their family's;
``setters`` chooses the families in force once and holds each fact's setters;
``composed.Conventions`` hands each span's facts to them.
"""

from .composed import CLOSED_MESSAGE, INTERRUPTED_MESSAGE, Conventions
from .keys import Attributes
from .providers import provider_name
from .setters import families

__all__ = [
    "CLOSED_MESSAGE",
    "INTERRUPTED_MESSAGE",
    "Attributes",
    "Conventions",
    "families",
    "provider_name",
]
