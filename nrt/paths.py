"""Where nrt keeps things (DESIGN.md section 4, a contract).

Cache: ``$NRT_CACHE_DIR``, else the configured one, else ``$XDG_CACHE_HOME/nrt``
(``~/.cache/nrt``). State (index, outbox, ingest records): ``$NRT_STATE_DIR``, else
the configured one, else ``$XDG_STATE_HOME/nrt`` (``~/.local/state/nrt``). Under
systemd these are the unit's CacheDirectory and StateDirectory, passed in the
``CACHE_DIRECTORY`` / ``STATE_DIRECTORY`` variables, which come before the XDG ones.
"""

from __future__ import annotations

import os
from pathlib import Path


def _resolve(
    env: str, configured: str | os.PathLike | None, systemd_env: str, xdg: str, home: str
) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    if configured:
        return Path(configured)
    if os.environ.get(systemd_env):
        # systemd may pass several colon-separated directories; the first is ours.
        return Path(os.environ[systemd_env].split(":")[0])
    base = os.environ.get(xdg) or str(Path.home() / home)
    return Path(base) / "nrt"


def cache_dir(configured: str | os.PathLike | None = None) -> Path:
    """The local cache root (not created)."""
    return _resolve("NRT_CACHE_DIR", configured, "CACHE_DIRECTORY", "XDG_CACHE_HOME", ".cache")


def state_dir(configured: str | os.PathLike | None = None) -> Path:
    """The state directory: index, outbox, ingest records (not created)."""
    return _resolve(
        "NRT_STATE_DIR", configured, "STATE_DIRECTORY", "XDG_STATE_HOME", ".local/state"
    )
