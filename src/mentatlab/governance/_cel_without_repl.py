"""Import the ``cel`` bindings without their interactive shell (issue 18: footprint).

``cel/__init__.py`` (common-expression-language 0.10) imports ``cel.cli``, its REPL, which
pulls in prompt_toolkit, pygments, rich and typer: ~17 MiB and ~0.1 s in every process
that evaluates a policy (the server and each ingest worker), for a shell none of them
runs. Importing this module first imports ``cel`` with an empty stand-in for ``cel.cli``,
then removes the stand-in, so a later ``import cel.cli`` (``python -m cel``) loads the real
one. A no-op when ``cel`` is already imported.
"""

from __future__ import annotations

import sys
import types

__all__: list[str] = []

if "cel" not in sys.modules and "cel.cli" not in sys.modules:
    _stand_in = types.ModuleType("cel.cli", "Not loaded: MentatLab does not run the cel REPL")
    sys.modules["cel.cli"] = _stand_in
    try:
        import cel  # noqa: F401  (cached in sys.modules for the importer)
    finally:
        if sys.modules.get("cel.cli") is _stand_in:
            del sys.modules["cel.cli"]
