r"""PII redaction configuration: the modes, per-org/project overrides, custom entities, hash key.

Light on purpose (no Presidio import): ``settings.py`` validates with it at start-up and
the ``redact`` stage resolves a span's mode with it. Decision record
``docs/decisions/0017-pii-redaction.md``; user documentation ``docs/governance.md``.

Formats (``docs/settings.md``):

* ``pii_mode``: one of :class:`PiiMode` (default ``redact``).
* ``pii_mode_overrides``: ``org=mode,org/project=mode`` (env or a string in
  ``mentatlab.toml``), or a TOML table ``{ "acme" = "hash", "acme/billing" = "drop" }``. A
  project entry wins over its org's, which wins over ``pii_mode``.
* ``pii_custom_entities``: a JSON object ``{"EMPLOYEE_ID": "\\bEMP-\\d{6}\\b"}`` (env or a
  string), or a TOML table; names are upper-case identifiers, values Python regexes.
* ``pii_hash_key``: the HMAC key of ``hash`` mode (at least 16 characters); unset, a random
  key is generated once into ``<data_dir>/pii_hash.key`` (mode 0600). Every node of a
  scale-out deployment must share it, or equal values hash differently per node.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from mentatlab.errors import ConfigError

__all__ = [
    "HASH_KEY_FILE",
    "MIN_HASH_KEY_CHARS",
    "PiiConfig",
    "PiiMode",
    "load_hash_key",
    "org_hash_key",
    "parse_custom_entities",
    "parse_mode_overrides",
]

HASH_KEY_FILE: Final = "pii_hash.key"
"""File name, in the data directory, of the generated ``hash`` mode key."""
MIN_HASH_KEY_CHARS: Final = 16
"""Shortest ``pii_hash_key`` accepted, in characters."""
_ENTITY_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_BUILT_IN_NAMES = frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN",
                             "IBAN_CODE", "IP_ADDRESS", "SECRET", "PERSON", "LOCATION"})


class PiiMode(StrEnum):
    """What the ``redact`` stage does with a string value holding PII."""

    OFF = "off"
    """Nothing is scanned; ``pii_findings`` stays empty."""
    DETECT = "detect"
    """Findings are recorded; values are stored unchanged."""
    REDACT = "redact"
    """Each finding is replaced by ``<CATEGORY>`` (the default)."""
    HASH = "hash"
    """Each finding is replaced by ``<CATEGORY:16 hex>``, an HMAC-SHA256 keyed per org."""
    DROP = "drop"
    """An attribute (or event attribute) holding a finding is removed whole."""


def _mode(value: str, where: str) -> PiiMode:
    try:
        return PiiMode(value.strip().lower())
    except ValueError:
        raise ConfigError(f"Expected {where} to be one of {[m.value for m in PiiMode]}, "
                          f"got {value!r}") from None


def parse_mode_overrides(raw: str | Mapping[str, Any]) -> dict[tuple[str, str], PiiMode]:
    """``pii_mode_overrides`` as ``{(org_id, project_id or ""): mode}``.

    Args:
        raw: ``"org=mode,org/project=mode"`` or a mapping of the same keys to modes.

    Raises:
        ConfigError: an entry without ``=``, an empty org, or an unknown mode.
    """
    if isinstance(raw, Mapping):
        items = [(str(k), str(v)) for k, v in raw.items()]
    else:
        items = []
        for entry in (e.strip() for e in raw.split(",")):
            if not entry:
                continue
            key, sep, value = entry.partition("=")
            if not sep:
                raise ConfigError(f"Expected pii_mode_overrides entries as org[/project]=mode, "
                                  f"got {entry!r}")
            items.append((key, value))
    out: dict[tuple[str, str], PiiMode] = {}
    for key, value in items:
        org, _, project = key.strip().partition("/")
        if not org:
            raise ConfigError(f"Expected an org id before '/' in pii_mode_overrides, got {key!r}")
        out[(org, project)] = _mode(value, f"pii_mode_overrides[{key.strip()}]")
    return out


def parse_custom_entities(raw: str | Mapping[str, Any]) -> dict[str, str]:
    """``pii_custom_entities`` as ``{ENTITY_NAME: regex}``.

    Args:
        raw: a JSON object text (empty string: none) or a mapping.

    Raises:
        ConfigError: not a JSON object, a name that is not an upper-case identifier or that
            shadows a built-in category, or a regex that does not compile (message names
            the entity and the regex error).
    """
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Expected pii_custom_entities to be a JSON object: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"Expected pii_custom_entities to be an object, got {type(raw).__name__}")
    out: dict[str, str] = {}
    for name, pattern in raw.items():
        if not isinstance(name, str) or not _ENTITY_NAME.fullmatch(name):
            raise ConfigError(f"Expected a pii_custom_entities name like EMPLOYEE_ID, got {name!r}")
        if name in _BUILT_IN_NAMES:
            raise ConfigError(f"Expected a pii_custom_entities name other than the built-in "
                              f"category {name}")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"Expected pii_custom_entities[{name}] to be a regex string, "
                              f"got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"Expected pii_custom_entities[{name}] to be a valid regex: "
                              f"{exc}") from None
        out[name] = pattern
    return out


@dataclass(frozen=True, slots=True)
class PiiConfig:
    """The resolved PII settings: which mode applies to which span, and what to find."""

    mode: PiiMode = PiiMode.REDACT
    """Mode of spans no override names."""
    overrides: Mapping[tuple[str, str], PiiMode] = field(default_factory=dict)
    """``{(org_id, project_id or ""): mode}``; a project entry wins over its org's."""
    custom_entities: Mapping[str, str] = field(default_factory=dict)
    """``{ENTITY_NAME: regex}`` found besides the built-in categories."""
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")
    """Regions whose national phone formats are recognised (international ``+`` formats
    are recognised whatever the list)."""
    ner_model: str = ""
    """An installed spaCy pipeline adding ``PERSON``/``LOCATION`` findings; empty: none."""

    @classmethod
    def from_settings(cls, settings: Any) -> PiiConfig:
        """The configuration of a :class:`~mentatlab.settings.Settings`.

        Raises:
            ConfigError: a PII setting that does not parse (see the parse functions).
        """
        regions = tuple(r.strip().upper() for r in settings.pii_phone_regions.split(",")
                        if r.strip())
        return cls(_mode(settings.pii_mode, "pii_mode"),
                   parse_mode_overrides(settings.pii_mode_overrides),
                   parse_custom_entities(settings.pii_custom_entities), regions,
                   settings.pii_ner_model.strip())

    @property
    def modes(self) -> frozenset[PiiMode]:
        """Every mode some span can get (the default's and the overrides')."""
        return frozenset({self.mode, *self.overrides.values()})

    @property
    def scans(self) -> bool:
        """True when some span can get a mode other than ``off`` (Presidio is then loaded)."""
        return self.modes != {PiiMode.OFF}

    def mode_for(self, org_id: str, project_id: str) -> PiiMode:
        """The mode of a span of ``org_id``/``project_id``: project, else org, else default."""
        if not self.overrides:
            return self.mode
        found = self.overrides.get((org_id, project_id))
        if found is None:
            found = self.overrides.get((org_id, ""), self.mode)
        return found


def load_hash_key(configured: str, data_dir: Path) -> bytes:
    """The ``hash`` mode master key: ``pii_hash_key``, else the data directory's key file.

    The key file (``<data_dir>/pii_hash.key``, 64 hex chars, mode 0600) is generated on
    first use. Several processes (ingest workers) may race to create it: each writes a
    temporary file and links it into place, so exactly one key wins and all read it.

    Raises:
        ConfigError: ``configured`` is shorter than :data:`MIN_HASH_KEY_CHARS`, or the key
            file exists but is empty or unreadable.
    """
    if configured:
        if len(configured) < MIN_HASH_KEY_CHARS:
            raise ConfigError(f"Expected pii_hash_key of at least {MIN_HASH_KEY_CHARS} "
                              f"characters, got {len(configured)}")
        return configured.encode()
    path = data_dir / HASH_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{HASH_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            tmp.unlink()
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"Expected a readable PII hash key file at {path}: {exc}") from None
    if len(text) < MIN_HASH_KEY_CHARS:
        raise ConfigError(f"Expected the PII hash key file {path} to hold at least "
                          f"{MIN_HASH_KEY_CHARS} characters")
    return text.encode()


def org_hash_key(master_key: bytes, org_id: str) -> bytes:
    """The per-org HMAC key: ``HMAC-SHA256(master_key, "mentatlab.pii:" + org_id)``.

    Equal values hash alike within an org and differently across orgs, so hashes cannot be
    joined between tenants (RFC 2104 HMAC; the derivation is the "salt per org").
    """
    return hmac.new(master_key, b"mentatlab.pii:" + org_id.encode(), hashlib.sha256).digest()
