"""Data governance: PII detection, guardrail policies, retention and erasure, encryption.

The domain library the pipeline's ``redact`` and ``policies`` stages, the governance jobs,
routes, CLI and compliance reports call into (decision records 0017–0021).
"""
