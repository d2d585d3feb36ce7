"""Finding the real services the tests need (mosquitto, prometheus, promtool, ...).

Locally a missing service skips its tests with the install command; in CI
(``CI=true``) it fails them, so a green CI run never hides an untested part.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

INSTALL_HINT = {
    "mosquitto": "apt-get install mosquitto",
    "mosquitto_sub": "apt-get install mosquitto-clients",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus",
    "systemd-analyze": "apt-get install systemd",
    "npm": "apt-get install npm",
    "fitsverify": "apt-get install fitsverify",
}


def require_binary(name: str) -> str:
    """Return the path of `name`, or skip (locally) / fail (CI) with how to install it."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path:
        return path
    message = f"{name} not found; install it with: {INSTALL_HINT.get(name, name)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on host:port."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")
