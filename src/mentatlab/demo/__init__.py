"""The demo: a fake OpenAI-compatible server and a driver of realistic agent traffic.

Nothing here is imported by the server; ``mentatctl demo`` (``mentatlab.cli.demo``) and the
end-to-end tests use it.
"""

from __future__ import annotations
