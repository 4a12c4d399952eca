"""TLS for the agent transport: the backend's server context and the agent's client context.

A backend with ``trusted_ca_file`` requires agents to present a certificate signed by that
CA (mutual TLS); an agent with ``cert_file`` presents one.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


class TLSConfigError(ValueError):
    """A certificate, key or CA file cannot be used (the message names it)."""


@dataclass(slots=True, frozen=True)
class TLSFiles:
    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None

    @property
    def any(self) -> bool:
        return any((self.cert_file, self.key_file, self.trusted_ca_file))


def _load_chain(context: ssl.SSLContext, files: TLSFiles) -> None:
    if files.cert_file is None:
        if files.key_file is not None:
            raise TLSConfigError(f"--key-file {files.key_file} given without --cert-file")
        return
    try:
        context.load_cert_chain(files.cert_file, files.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot use --cert-file {files.cert_file} / --key-file {files.key_file}: {exc}") from exc


def _load_ca(context: ssl.SSLContext, files: TLSFiles) -> None:
    try:
        context.load_verify_locations(cafile=files.trusted_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot use --trusted-ca-file {files.trusted_ca_file}: {exc}") from exc


def server_context(files: TLSFiles) -> ssl.SSLContext:
    if files.cert_file is None:
        raise TLSConfigError("the backend needs --cert-file (and --key-file) to serve TLS")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, files)
    if files.trusted_ca_file is not None:
        _load_ca(context, files)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(files: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.trusted_ca_file is not None:
        _load_ca(context, files)
    _load_chain(context, files)
    return context
