"""Throw-away TLS material for tests: a private certificate authority, a server and a client certificate.

Tests of encrypted connections start their own servers (redis-server with ``--tls-port``, a private PostgreSQL
with ``ssl=on``) and need certificates those servers present and clients verify. :func:`make_tls_files` builds
them with the ``openssl`` command-line tool into a directory (a temporary one by default): a CA that signs a
server certificate valid for ``localhost`` and ``127.0.0.1`` and a client certificate (for servers that ask the
client for one, such as redis-server's default ``tls-auth-clients yes``). Keys are P-256 EC keys (fast to make)
written without a passphrase and readable by their owner only; everything expires after ``days`` days.

Nothing here is fit for production: the CA key sits next to its certificate, unprotected.

Typical use::

    if openssl_binary() is None:
        missing_service("openssl", "the openssl command is not on PATH")
    files = make_tls_files()
    try:
        ...  # files.ca_cert, files.server_cert, files.server_key, files.client_cert, files.client_key
    finally:
        files.remove()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TlsFiles", "TlsMaterialError", "make_tls_files", "openssl_binary", "openssl_version"]


class TlsMaterialError(RuntimeError):
    """``openssl`` is missing or one of its commands failed (the message holds its output)."""


def openssl_binary() -> str | None:
    """Path of the ``openssl`` command, or None when it is not installed."""
    return shutil.which("openssl")


def openssl_version() -> str | None:
    """The output of ``openssl version`` (e.g. ``OpenSSL 3.0.13 30 Jan 2024``), or None when it does not run."""
    binary = openssl_binary()
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated PEM files (all inside :attr:`directory`)."""

    directory: Path  #: where every file lives
    ca_cert: Path  #: the CA certificate clients trust
    ca_key: Path  #: the CA private key (only needed to sign more certificates)
    server_cert: Path  #: the server certificate, signed by the CA, for ``localhost`` and ``127.0.0.1``
    server_key: Path  #: the server private key
    client_cert: Path  #: a client certificate signed by the same CA (for servers that verify clients)
    client_key: Path  #: the client private key

    def remove(self) -> None:
        """Delete :attr:`directory` and everything in it; idempotent."""
        shutil.rmtree(self.directory, ignore_errors=True)


def _run(binary: str, args: Sequence[str], cwd: Path) -> None:
    try:
        result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    except (OSError, subprocess.SubprocessError) as exc:
        raise TlsMaterialError(f"openssl {args[0]} could not run: {exc}") from None
    if result.returncode != 0:
        raise TlsMaterialError(f"openssl {' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-1500:]}")


def _sign(
    binary: str, directory: Path, name: str, subject: str, extensions: list[str], ca_cert: Path, ca_key: Path, days: int
) -> tuple[Path, Path]:
    key, csr, cert, ext = (directory / f"{name}{suffix}" for suffix in (".key", ".csr", ".crt", ".ext"))
    ext.write_text("\n".join(extensions) + "\n")
    _run(binary, ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", str(key), "-out", str(csr), "-subj", subject], directory)  # fmt: skip
    # A random serial per certificate (no .srl file shared between calls).
    serial = "0x" + os.urandom(16).hex()
    _run(binary, ["x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-set_serial", serial,
                  "-days", str(days), "-sha256", "-extfile", str(ext), "-out", str(cert)], directory)  # fmt: skip
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)
    return cert, key


def make_tls_files(
    directory: Path | str | None = None,
    *,
    hostnames: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    days: int = 2,
) -> TlsFiles:
    """Generate a CA, a server certificate for ``hostnames`` + ``ip_addresses`` and a client certificate.

    :param directory: where to write the files (created if needed; a new temporary directory by default).
    :param hostnames: DNS names in the server certificate's subjectAltName.
    :param ip_addresses: IP addresses in the server certificate's subjectAltName.
    :param days: validity of every certificate.
    :raises TlsMaterialError: ``openssl`` is not installed or a command failed.
    """
    binary = openssl_binary()
    if binary is None:
        raise TlsMaterialError("the openssl command is not on PATH")
    target = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="contextkit-tls-"))
    target.mkdir(parents=True, exist_ok=True)
    try:
        ca_cert, ca_key = target / "ca.crt", target / "ca.key"
        _run(binary, ["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", str(ca_key), "-out", str(ca_cert), "-days", str(days), "-sha256",
                      "-subj", "/CN=contextkit test CA",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"], target)  # fmt: skip
        ca_key.chmod(0o600)
        names = [f"DNS:{name}" for name in hostnames] + [f"IP:{address}" for address in ip_addresses]
        server_cert, server_key = _sign(
            binary,
            target,
            "server",
            f"/CN={hostnames[0] if hostnames else ip_addresses[0]}",
            [
                "basicConstraints=CA:FALSE",
                "keyUsage=critical,digitalSignature,keyEncipherment",
                "extendedKeyUsage=serverAuth",
                "subjectAltName=" + ",".join(names),
            ],
            ca_cert,
            ca_key,
            days,
        )
        client_cert, client_key = _sign(
            binary,
            target,
            "client",
            "/CN=contextkit test client",
            ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=clientAuth"],
            ca_cert,
            ca_key,
            days,
        )
    except BaseException:
        if directory is None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return TlsFiles(target, ca_cert, ca_key, server_cert, server_key, client_cert, client_key)
