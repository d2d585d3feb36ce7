"""One tier test suite, three stores: the local directory, iRODS through an in-repo
fake of python-irodsclient, and a live iRODS (only when IRODS_ENVIRONMENT_FILE is set).

The live variant is *not* faked: without IRODS_ENVIRONMENT_FILE it is reported as
skipped, with the reason, in every run (README: "which ran where").
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nrt.cache.local import LocalTier


@dataclass
class Store:
    """A tier under test, a read-only view of the same store, and a way to damage a payload."""

    kind: str
    tier: Any
    read_only: Any
    corrupt: Callable[[str, str], None]  # (signature, payload file name)
    session: Any = None


def _local(tmp_path: Path) -> Iterator[Store]:
    root = tmp_path / "tier-local"

    def corrupt(signature: str, name: str) -> None:
        path = LocalTier(root).path(signature) / name
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    yield Store("local", LocalTier(root), LocalTier(root, read_only=True, name="archive"), corrupt)


def _irods(session: Any, collection: str, tmp_path: Path, kind: str) -> Iterator[Store]:
    from irods import keywords as kw

    from nrt.cache.irods import IrodsTier

    tier = IrodsTier(
        collection, session=session, spool=tmp_path / "spool", parallel_threshold=1 << 20
    )
    view = IrodsTier(
        collection, session=session, read_only=True, name="archive", spool=tmp_path / "spool-ro"
    )

    def corrupt(signature: str, name: str) -> None:
        bad = tmp_path / f"bad-{uuid.uuid4().hex}"
        bad.write_bytes(b"not what the manifest says")
        # Overwrite the bytes behind the tier's back (no checksum registered).
        session.data_objects.put(
            str(bad), f"{tier.path(signature)}/{name}", **{kw.FORCE_FLAG_KW: ""}
        )

    yield Store(kind, tier, view, corrupt, session)


def _make(kind: str, tmp_path: Path) -> Iterator[Store]:
    if kind == "local":
        yield from _local(tmp_path)
    elif kind == "irods-fake":
        from tests.support.fake_irods import FakeSession

        yield from _irods(FakeSession(tmp_path / "zone"), "/tempZone/home/rods/nrt", tmp_path, kind)
    else:
        env_file = os.environ.get("IRODS_ENVIRONMENT_FILE")
        if not env_file:
            pytest.skip(
                "live iRODS suite NOT RUN: IRODS_ENVIRONMENT_FILE is not set (no iRODS server here)"
            )
        from irods.session import iRODSSession

        env = json.loads(Path(env_file).read_text())
        home = env.get("irods_home") or f"/{env['irods_zone_name']}/home/{env['irods_user_name']}"
        collection = f"{home}/nrt-test-{uuid.uuid4().hex[:12]}"
        session = iRODSSession(irods_env_file=env_file)
        try:
            yield from _irods(session, collection, tmp_path, kind)
        finally:
            if session.collections.exists(collection):
                session.collections.remove(collection, recurse=True, force=True)
            session.cleanup()


@pytest.fixture(params=["local", "irods-fake", "irods-live"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every tier: the contract they all keep."""
    yield from _make(request.param, tmp_path)


@pytest.fixture(params=["irods-fake", "irods-live"])
def irods_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """iRODS only: AVUs, catalog checksums, async wrappers."""
    yield from _make(request.param, tmp_path)


@pytest.fixture
def fake_irods_store(tmp_path: Path) -> Iterator[Store]:
    yield from _make("irods-fake", tmp_path)
