"""Encryption keys at rest: one key list, sub-keys per use, and the control store's secrets.

The operator configures a list of keys, **newest first** (``MENTATLAB_ENCRYPTION_KEY``, comma
separated, or ``MENTATLAB_ENCRYPTION_KEY_FILE``, one per line): each a Fernet key (32
random bytes in URL-safe base64, ``mentatctl governance keygen``). The first key encrypts;
every key decrypts, so a rotation is "put the new key first, keep the old ones until
everything is re-encrypted" (``MultiFernet`` semantics,
https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet).

No key is used directly. Each use gets its own sub-key derived with HKDF-SHA256 (RFC 5869)
and a fixed ``info`` label, so the span store's disk key and the control store's secret
key are independent, and a key id that may be written to disk (the store's marker file) is
a one-way derivation, never the key in any encoding:

* ``mentatlab/span-store-disk/v1``: 32 bytes, the AES-256-CTR key of ClickHouse
  ``encrypted`` disks (embedded chDB store, :mod:`mentatlab.storage.encrypted_disk`);
* ``mentatlab/control-secrets/v1``: 32 bytes, a Fernet key (AES-128-CBC + HMAC-SHA256)
  for secrets kept in the control store (alert channel targets with their tokens);
* ``mentatlab/key-id/v1``: 8 bytes shown as hex, the key's id.

Stored secrets carry the prefix ``mlenc:v1:`` before the Fernet token; a value without it
is plaintext (written before a key was configured) and reads as is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mentatlab.errors import ConfigError

__all__ = [
    "SECRET_PREFIX",
    "EncryptionKeys",
    "SecretCipher",
    "generate_key",
    "is_encrypted_secret",
    "keys_from_sequence",
    "load_encryption_keys",
    "parse_keys",
]

SECRET_PREFIX = "mlenc:v1:"
"""Marks an encrypted control-store value: ``mlenc:v1:<Fernet token>``."""

_DISK_INFO = b"mentatlab/span-store-disk/v1"
_SECRETS_INFO = b"mentatlab/control-secrets/v1"
_KEY_ID_INFO = b"mentatlab/key-id/v1"


def _derive(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


def generate_key() -> str:
    """A new random key (32 bytes from ``os.urandom``, URL-safe base64, 44 characters)."""
    return Fernet.generate_key().decode()


def _decode_key(text: str, position: int) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        # never echo the text: it may be a real key with a typo
        raise ConfigError(
            f"Expected encryption key #{position + 1} to be 32 bytes in URL-safe base64 (44 "
            f"characters, `mentatctl governance keygen`), got {len(text)} characters")
    return raw


@dataclass(frozen=True, slots=True)
class EncryptionKeys:
    """The configured keys, newest (the one that encrypts) first.

    Attributes:
        keys: raw 32-byte keys; ``keys[0]`` encrypts, all decrypt.
    """

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("Expected at least one encryption key")

    def __repr__(self) -> str:  # never print a key
        return f"EncryptionKeys(ids={list(self.key_ids())})"

    def export_text(self) -> str:
        """The keys as ``encryption_key`` text (comma-separated, newest first).

        Only to hand them to a child process of this one; never log or store it.
        """
        return ",".join(base64.urlsafe_b64encode(k).decode("ascii") for k in self.keys)

    def key_ids(self) -> tuple[str, ...]:
        """The keys' ids (16 hex digits each, HKDF of the key), in the same order."""
        return tuple(_derive(k, _KEY_ID_INFO, 8).hex() for k in self.keys)

    @property
    def current_key_id(self) -> str:
        """Id of the key that encrypts (the first)."""
        return self.key_ids()[0]

    def disk_keys_hex(self) -> tuple[str, ...]:
        """AES-256-CTR keys for ClickHouse ``encrypted`` disks (64 hex digits), in order."""
        return tuple(_derive(k, _DISK_INFO, 32).hex() for k in self.keys)

    def secret_cipher(self) -> SecretCipher:
        """The cipher for control-store secrets with these keys."""
        return SecretCipher(self)


def parse_keys(text: str) -> EncryptionKeys | None:
    """Keys from a comma- or newline-separated list (``#`` starts a comment line).

    Returns:
        None when the text holds no key.

    Raises:
        ConfigError: a key is not 32 bytes of URL-safe base64, or a key is listed twice.
    """
    parts = [p.strip() for line in text.splitlines() if not line.strip().startswith("#")
             for p in line.split(",")]
    keys = tuple(_decode_key(p, i) for i, p in enumerate(p for p in parts if p))
    if not keys:
        return None
    if len(set(keys)) != len(keys):
        raise ConfigError("Expected each encryption key once, got a key listed twice")
    return EncryptionKeys(keys)


def load_encryption_keys(key_text: str, key_file: Path | None) -> EncryptionKeys | None:
    """The keys of the ``encryption_key`` / ``encryption_key_file`` settings, or None.

    Raises:
        ConfigError: both are set, the file cannot be read, or a key is malformed.
    """
    if key_text and key_file is not None:
        raise ConfigError("Set encryption_key or encryption_key_file, not both")
    if key_file is not None:
        try:
            key_text = key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"Cannot read encryption_key_file {key_file}: {exc}") from exc
        if key_file.stat().st_mode & 0o077:
            raise ConfigError(f"Expected encryption_key_file {key_file} to be readable by its "
                              f"owner only (chmod 600), got mode {key_file.stat().st_mode:o}")
    return parse_keys(key_text) if key_text else None


def is_encrypted_secret(value: str) -> bool:
    """True when ``value`` was written by :meth:`SecretCipher.encrypt`."""
    return value.startswith(SECRET_PREFIX)


class SecretCipher:
    """Encrypts and decrypts control-store secrets (text) with ``MultiFernet``.

    Args:
        keys: the configured keys; None reads plaintext and refuses encrypted values.
    """

    def __init__(self, keys: EncryptionKeys | None) -> None:
        self.keys = keys
        self._fernet = None if keys is None else MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(k, _SECRETS_INFO, 32))) for k in keys.keys])

    @property
    def enabled(self) -> bool:
        """True when a key is configured (new secrets are written encrypted)."""
        return self._fernet is not None

    def encrypt(self, plaintext: str) -> str:
        """``mlenc:v1:<token>`` with the newest key; ``plaintext`` as is without a key."""
        if self._fernet is None:
            return plaintext
        return SECRET_PREFIX + self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, stored: str, what: str = "a stored secret") -> str:
        """The plaintext of a stored value (plaintext values are returned as they are).

        Raises:
            ConfigError: ``stored`` is encrypted and no key is configured, or none of the
                configured keys decrypts it (a wrong key, or the old key was dropped too
                early).
        """
        if not stored.startswith(SECRET_PREFIX):
            return stored
        if self._fernet is None:
            raise ConfigError(
                f"{what} is encrypted but no encryption key is configured: set "
                "MENTATLAB_ENCRYPTION_KEY (or MENTATLAB_ENCRYPTION_KEY_FILE) to the key it was "
                "written with")
        try:
            return self._fernet.decrypt(stored[len(SECRET_PREFIX):].encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"None of the configured encryption keys decrypts {what}: a wrong key, or an "
                "old key removed before `mentatctl governance rotate-secrets` re-encrypted "
                "everything") from None

    def reencrypt(self, stored: str) -> str:
        """``stored`` encrypted with the newest key (plaintext gets encrypted too).

        Raises:
            ConfigError: no key is configured, or no configured key decrypts ``stored``.
        """
        if self._fernet is None:
            raise ConfigError("Expected an encryption key to re-encrypt with, got none")
        return self.encrypt(self.decrypt(stored))

    def is_current(self, stored: str) -> bool:
        """True when ``stored`` is encrypted and its token was made with the newest key."""
        if self.keys is None or not stored.startswith(SECRET_PREFIX):
            return False
        newest = Fernet(base64.urlsafe_b64encode(_derive(self.keys.keys[0], _SECRETS_INFO, 32)))
        try:
            newest.decrypt(stored[len(SECRET_PREFIX):].encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True


def keys_from_sequence(texts: Sequence[str]) -> EncryptionKeys:
    """Keys from a list of URL-safe base64 texts (tests and tools).

    Raises:
        ConfigError: an empty list or a malformed key.
    """
    return EncryptionKeys(tuple(_decode_key(t, i) for i, t in enumerate(texts)))

