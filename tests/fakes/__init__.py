"""Test-only fake provider servers (OpenAI, Anthropic, Bedrock) on real HTTP.

Each fake answers in its provider's documented wire format, derives the usage it reports
from the request (a ``[case:ID]`` tag and ``[cache:...]``/``[fail:...]`` flags in the
prompt, the model, the tools), and records every answer so a test knows the exact usage
of each call. See :mod:`fakes.scenario` for the request tags.
"""
