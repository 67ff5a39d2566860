from __future__ import annotations

from collections.abc import Callable

import pytest

from mentatlab.conventions.provider import (
    infer_provider_from_host,
    infer_provider_from_model,
    normalize_provider,
)
from mentatlab.model.span import CanonicalSpan

Norm = Callable[..., CanonicalSpan]


@pytest.mark.parametrize(("host", "provider"), [
    ("us-central1-aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.openai.com", "openai"),
    ("myres.openai.azure.com", "azure.ai.openai"),
    ("bedrock-runtime.us-east-1.amazonaws.com", "aws.bedrock"),
    ("s3.amazonaws.com", None),
    ("localhost", None),
    ("openrouter.ai", "openrouter"),
])
def test_hosts(host: str, provider: str | None) -> None:
    assert infer_provider_from_host(host) == provider


@pytest.mark.parametrize(("model", "provider"), [
    ("openai/gpt-5-mini", "openai"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock"),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", "aws.bedrock"),
    ("google/gemini-2.5-flash", None),
    ("gpt-4o", None),
    ("claude-3-haiku-20240307", None),
    ("", None),
])
def test_models(model: str, provider: str | None) -> None:
    assert infer_provider_from_model(model) == provider


def test_vercel_provider_ids() -> None:
    assert normalize_provider("openai.chat") == "openai"
    assert normalize_provider("anthropic.messages") == "anthropic"
    assert normalize_provider("google.vertex.chat") == "gcp.vertex_ai"
    assert normalize_provider("google.generative-ai") == "gcp.gemini"
    assert normalize_provider("amazon-bedrock") == "aws.bedrock"
    assert normalize_provider("") is None


def test_attribute_beats_host_beats_model(normalized: Norm) -> None:
    assert normalized({"gen_ai.system": "openai", "server.address": "openrouter.ai"}
                      ).provider == "openai"
    assert normalized({"server.address": "api.groq.com",
                       "gen_ai.request.model": "openai/gpt-oss-120b"}).provider == "groq"
    assert normalized({"gen_ai.request.model": "openai/gpt-oss-120b"}).provider == "openai"
    assert normalized({"gen_ai.request.model": "gpt-4o"}).provider == ""
