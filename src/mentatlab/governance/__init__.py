"""Data governance: PII, guardrail policies, retention and erasure, encryption, compliance.

The domain library the pipeline's ``redact`` and ``policies`` stages, the governance jobs,
routes and CLI call into (decision records 0017–0021).
"""
