"""TLS for both listeners (HTTP and OTLP/gRPC) from configured PEM files.

The files are checked once at startup, before anything binds: a missing, unreadable or
malformed file, a key that does not match the certificate, or a key protected by a
passphrase is a :class:`~mentatlab.errors.ConfigError` naming the setting. With
``tls_client_ca_file`` set, both listeners also require a client certificate signed by
that CA (mutual TLS).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mentatlab.errors import ConfigError
from mentatlab.settings import Settings

__all__ = ["TlsFiles", "grpc_server_credentials", "load_tls", "uvicorn_tls_options"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The checked PEM files of the listeners' TLS."""

    cert_file: Path
    """Certificate chain, the server's certificate first."""
    key_file: Path
    """Unencrypted private key of the certificate."""
    client_ca_file: Path | None
    """CA bundle client certificates must chain to; None: no client certificate asked."""


def _refuse_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's
    # passphrase, hanging a server started by a service manager.
    raise ConfigError("Expected tls_key_file to be an unencrypted PEM private key; it "
                      "asks for a passphrase")


def _read(name: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"Expected {name} to be a readable file, got {str(path)!r}: "
                          f"{exc.strerror or exc}") from None


def load_tls(settings: Settings) -> TlsFiles | None:
    """The TLS files of ``settings``, checked; None when TLS is off (no certificate set).

    Raises:
        ConfigError: only one of ``tls_cert_file``/``tls_key_file`` is set;
            ``tls_client_ca_file`` is set without them; a file is missing or unreadable;
            the certificate or key is not PEM, they do not match, or the key is
            encrypted; the client CA file holds no PEM certificate.
    """
    cert, key = settings.tls_cert_file, settings.tls_key_file
    client_ca = settings.tls_client_ca_file
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigError("Expected tls_cert_file and tls_key_file with "
                              "tls_client_ca_file: mutual TLS needs the server's own TLS")
        return None
    if cert is None or key is None:
        missing = "tls_key_file" if key is None else "tls_cert_file"
        raise ConfigError(f"Expected both tls_cert_file and tls_key_file, {missing} is not set")
    for name, path in (("tls_cert_file", cert), ("tls_key_file", key),
                       ("tls_client_ca_file", client_ca)):
        if path is not None:
            _read(name, path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_refuse_passphrase)
    except ssl.SSLError as exc:
        raise ConfigError(f"Expected tls_cert_file {str(cert)!r} and tls_key_file "
                          f"{str(key)!r} to be a PEM certificate chain and its matching "
                          f"unencrypted private key: {exc.reason or exc}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise ConfigError(f"Expected tls_client_ca_file {str(client_ca)!r} to hold PEM "
                              f"CA certificates: {exc.reason or exc}") from None
    return TlsFiles(cert, key, client_ca)


def uvicorn_tls_options(tls: TlsFiles | None) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run``/``uvicorn.Config`` serving ``tls`` ({} when off)."""
    if tls is None:
        return {}
    options: dict[str, Any] = {"ssl_certfile": str(tls.cert_file),
                               "ssl_keyfile": str(tls.key_file)}
    if tls.client_ca_file is not None:
        options.update(ssl_ca_certs=str(tls.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def grpc_server_credentials(tls: TlsFiles | None) -> Any:
    """``grpc.ssl_server_credentials`` serving ``tls``; None when TLS is off.

    Raises:
        ConfigError: a file became unreadable since :func:`load_tls` checked it.
    """
    if tls is None:
        return None
    import grpc

    try:
        client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
        pair = (tls.key_file.read_bytes(), tls.cert_file.read_bytes())
    except OSError as exc:
        raise ConfigError(f"Cannot read a TLS file: {exc}") from None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)
