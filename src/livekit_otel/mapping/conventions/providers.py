"""Provider names as OpenTelemetry's GenAI registry spells them."""

from __future__ import annotations

import functools

# host (or a part of it) a provider reports -> OpenTelemetry's gen_ai.provider.name value
_REGISTRY_BY_HOST = (
    ("openai.azure.com", "azure.ai.openai"),
    ("models.inference.ai.azure.com", "azure.ai.inference"),
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("bedrock", "aws.bedrock"),
    ("api.groq.com", "groq"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.cohere", "cohere"),
    ("watsonx", "ibm.watsonx.ai"),
)
# names plugins report instead of a host
_REGISTRY_BY_NAME = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gcp.gen_ai",
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "cohere": "cohere",
}


@functools.lru_cache(maxsize=256)
def provider_name(provider: str) -> str:
    """OpenTelemetry's registry value for a known provider; an unknown one as reported."""
    lowered = provider.lower()
    known = _REGISTRY_BY_NAME.get("".join(char for char in lowered if char.isalnum()))
    if known is not None:
        return known
    for host, name in _REGISTRY_BY_HOST:
        if host in lowered:
            return name
    return provider
