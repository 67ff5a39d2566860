"""The control store of this machine, for the commands that bypass the server.

``keys create --bootstrap``, ``audit verify|checkpoint`` and ``quotas`` act on the
installation itself (the first key, a check a lying server cannot hide, limits an org's
admin cannot raise), so they open the control store with the server's settings
(``MENTATLAB_DATA_DIR``, ``MENTATLAB_CONTROL_STORE``...) instead of calling the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mentatlab.cli._client import err_console

if TYPE_CHECKING:
    from mentatlab.storage.control import ControlStore

__all__ = ["DataDirOpt", "open_local_control_store"]

DataDirOpt = Annotated[Path | None, typer.Option(
    help="Data folder whose control store to use (MENTATLAB_DATA_DIR).")]


def open_local_control_store(data_dir: Path | None) -> ControlStore:
    """The installation's control store, migrated, with its audit signing key.

    Raises:
        typer.Exit: (code 2) a bad setting or a store that cannot be opened, said on stderr.
    """
    from mentatlab.errors import MentatLabError
    from mentatlab.server.components import open_control_store
    from mentatlab.settings import load_settings

    try:
        # no secret check: these commands never read a secret (rotate-secrets decrypts and
        # says so itself), and an auditor running `audit verify` holds no encryption key
        return open_control_store(load_settings(data_dir=data_dir), check_secrets=False)
    except MentatLabError as exc:
        err_console.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
