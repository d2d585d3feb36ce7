"""Shared fixtures: isolated cache/state directories, real services."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(autouse=True)
def isolated_nrt_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every test gets its own cache and state directories, never the user's."""
    dirs = {"cache": tmp_path / "nrt-cache", "state": tmp_path / "nrt-state"}
    monkeypatch.setenv("NRT_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setenv("NRT_STATE_DIR", str(dirs["state"]))
    return dirs


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A started mosquitto on a free port (anonymous, persistent); stopped afterwards."""
    broker = Mosquitto(workdir=tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def realdata() -> Path:
    """The shared real light curves (read in place, never copied)."""
    if not REALDATA.is_dir():
        pytest.fail(f"real data not found at {REALDATA}; the checkout must sit beside shared/")
    return REALDATA
