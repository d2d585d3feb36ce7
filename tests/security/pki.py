"""A throwaway certificate authority made with openssl: broker and client certificates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.services import require_binary


def _openssl(*args: str) -> None:
    subprocess.run([shutil.which("openssl") or require_binary("openssl"), *args],
                   check=True, capture_output=True)  # fmt: skip


def _key_and_csr(key: Path, csr: Path, cn: str) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")  # fmt: skip


def _sign(csr: Path, cert: Path, ca: Path, ca_key: Path, ext: Path) -> None:
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip


def make_pki(directory: Path) -> dict[str, Path]:
    """ca.crt, broker.crt/.key (localhost, 127.0.0.1) and client.crt/.key (CN nrt)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {n: directory / n for n in
             ("ca.crt", "ca.key", "broker.crt", "broker.key", "client.crt", "client.key")}  # fmt: skip
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(paths["ca.key"]), "-out", str(paths["ca.crt"]), "-days", "1",
             "-subj", "/CN=nrt test CA")  # fmt: skip
    server_ext = directory / "server.ext"
    server_ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    client_ext = directory / "client.ext"
    client_ext.write_text("extendedKeyUsage=clientAuth\n")
    for name, cn, ext in (("broker", "localhost", server_ext), ("client", "nrt", client_ext)):
        csr = directory / f"{name}.csr"
        _key_and_csr(paths[f"{name}.key"], csr, cn)
        _sign(csr, paths[f"{name}.crt"], paths["ca.crt"], paths["ca.key"], ext)
    for key in ("ca.key", "broker.key", "client.key"):
        paths[key].chmod(0o600)
    return paths
