"""An on-disk fake of the small part of python-irodsclient that ``IrodsTier`` uses.

No iRODS server can be installed on the test machine, so the tier's shared test
suite also runs against this. Data objects are real files under ``<root>/data``;
the "catalog" (registered sha2 checksums, AVUs) lives under ``<root>/catalog``,
so several processes (Dask workers) see one zone, and a checksum registered at
put time stays what it was when the bytes are damaged afterwards, as on a real
resource. It raises python-irodsclient's own exception classes and follows its
semantics where the tier depends on them: ``collections.move`` onto an existing
collection moves *into* it; ``data_objects.get`` without a local path only
returns the object; a download onto an existing file needs the force flag. It
records the ``num_threads`` each transfer asked for (in this process).

``session_from_environment()`` opens the zone named by ``$NRT_FAKE_IRODS_ROOT``;
``IrodsTier`` calls it in worker processes when ``NRT_IRODS_SESSION_FACTORY``
names it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from irods import keywords as kw
from irods.exception import (
    OVERWRITE_WITHOUT_FORCE_FLAG,
    CollectionDoesNotExist,
    DataObjectDoesNotExist,
)
from irods.meta import iRODSMeta
from irods.models import Collection, CollectionMeta

AVUS = ".avus.json"


class FakeDataObject:
    def __init__(self, path: str, size: int, checksum: str | None) -> None:
        self.path = path
        self.name = path.rsplit("/", 1)[1]
        self.size = size
        self.checksum = checksum


class FakeMetadata:
    def __init__(self, session: FakeSession, path: str) -> None:
        self._session, self._path = session, path

    def items(self) -> list[iRODSMeta]:
        return [iRODSMeta(*avu) for avu in self._session.read_avus(self._path)]

    def get_all(self, key: str) -> list[iRODSMeta]:
        return [m for m in self.items() if m.name == key]

    def apply_atomic_operations(self, *ops: Any) -> None:
        with self._session.lock:
            avus = self._session.read_avus(self._path)
            for op in ops:
                triple = [op.avu.name, op.avu.value, op.avu.units or ""]
                if op.operation == "add":
                    avus.append(triple)
                else:
                    avus = [a for a in avus if a[:2] != triple[:2]]
            self._session.write_avus(self._path, avus)


class FakeCollection:
    def __init__(self, session: FakeSession, path: str) -> None:
        self.path = path
        self.name = path.rsplit("/", 1)[1]
        self.metadata = FakeMetadata(session, path)


class _Collections:
    def __init__(self, session: FakeSession) -> None:
        self.s = session

    def exists(self, path: str) -> bool:
        return self.s.data(path).is_dir()

    def get(self, path: str) -> FakeCollection:
        if not self.exists(path):
            raise CollectionDoesNotExist()
        return FakeCollection(self.s, path.rstrip("/"))

    def create(self, path: str, recurse: bool = True, **options: Any) -> FakeCollection:
        self.s.data(path).mkdir(parents=recurse, exist_ok=True)
        return self.get(path)

    def remove(self, path: str, recurse: bool = True, force: bool = False, **options: Any) -> None:
        if not self.exists(path):
            raise CollectionDoesNotExist()
        shutil.rmtree(self.s.data(path))
        shutil.rmtree(self.s.catalog(path), ignore_errors=True)

    def move(self, src_path: str, dest_path: str) -> None:
        if not self.exists(src_path):
            raise CollectionDoesNotExist()
        if self.exists(dest_path):
            dest_path = f"{dest_path}/{src_path.rsplit('/', 1)[1]}"
        self.s.data(src_path).rename(self.s.data(dest_path))
        if self.s.catalog(src_path).exists():
            self.s.catalog(dest_path).parent.mkdir(parents=True, exist_ok=True)
            self.s.catalog(src_path).rename(self.s.catalog(dest_path))


class _DataObjects:
    def __init__(self, session: FakeSession) -> None:
        self.s = session

    def exists(self, path: str) -> bool:
        return self.s.data(path).is_file()

    def get(
        self, path: str, local_path: str | None = None, num_threads: int = 0, **options: Any
    ) -> FakeDataObject:
        source = self.s.data(path)
        if not self.s.data(path.rsplit("/", 1)[0]).is_dir():
            raise CollectionDoesNotExist()
        if not source.is_file():
            raise DataObjectDoesNotExist()
        if local_path:
            target = Path(local_path)
            if target.is_dir():
                target = target / source.name
            if target.exists() and kw.FORCE_FLAG_KW not in options:
                raise OVERWRITE_WITHOUT_FORCE_FLAG
            self.s.transfers.append(("get", path, num_threads))
            shutil.copyfile(source, target)
        checksum = self.s.catalog(path + ".sha2")
        registered = checksum.read_text() if checksum.is_file() else None
        return FakeDataObject(path, source.stat().st_size, registered)

    def put(self, local_path: str, irods_path: str, num_threads: int = 0, **options: Any) -> None:
        target = self.s.data(irods_path)
        if not target.parent.is_dir():
            raise CollectionDoesNotExist()
        if target.exists() and kw.FORCE_FLAG_KW not in options:
            raise OVERWRITE_WITHOUT_FORCE_FLAG
        self.s.transfers.append(("put", irods_path, num_threads))
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        shutil.copyfile(local_path, staging)
        os.replace(staging, target)
        checksum = self.s.catalog(irods_path + ".sha2")
        if kw.REG_CHKSUM_KW in options:
            digest = hashlib.sha256(target.read_bytes()).digest()
            checksum.parent.mkdir(parents=True, exist_ok=True)
            checksum.write_text("sha2:" + base64.b64encode(digest).decode())
        else:
            checksum.unlink(missing_ok=True)

    def unlink(self, path: str, force: bool = False, **options: Any) -> None:
        if not self.exists(path):
            raise DataObjectDoesNotExist()
        self.s.data(path).unlink()
        self.s.catalog(path + ".sha2").unlink(missing_ok=True)


class _Query:
    """``session.query(Collection.name).filter(CollectionMeta.name == a, CollectionMeta.value == b)``."""

    def __init__(self, session: FakeSession, columns: tuple) -> None:
        if columns != (Collection.name,):
            raise NotImplementedError("the fake answers queries for Collection.name only")
        self.s, self.criteria = session, []

    def filter(self, *criteria: Any) -> _Query:
        for c in criteria:
            if c.op != "=" or c.query_key not in (CollectionMeta.name, CollectionMeta.value):
                raise NotImplementedError("the fake filters on CollectionMeta name/value (=) only")
        self.criteria.extend(criteria)
        return self

    def __iter__(self):
        catalog = self.s.root / "catalog"
        for found in sorted(catalog.rglob(AVUS)):
            path = "/" + found.parent.relative_to(catalog).as_posix()
            for name, value, _units in self.s.read_avus(path):
                fields = {CollectionMeta.name: name, CollectionMeta.value: value}
                if all(fields[c.query_key] == c.value for c in self.criteria):
                    yield {Collection.name: path}
                    break


class FakeSession:
    """Stands in for ``irods.session.iRODSSession`` (zone files under `root`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        for part in ("data", "catalog"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.transfers: list[tuple[str, str, int]] = []
        self.collections = _Collections(self)
        self.data_objects = _DataObjects(self)

    def _under(self, base: str, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if ".." in parts:
            raise ValueError(f"bad iRODS path {path!r}")
        return self.root.joinpath(base, *parts)

    def data(self, path: str) -> Path:
        return self._under("data", path)

    def catalog(self, path: str) -> Path:
        return self._under("catalog", path)

    def read_avus(self, path: str) -> list[list[str]]:
        found = self.catalog(path) / AVUS
        return json.loads(found.read_text()) if found.is_file() else []

    def write_avus(self, path: str, avus: list[list[str]]) -> None:
        target = self.catalog(path) / AVUS
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f"{AVUS}.{uuid.uuid4().hex[:8]}")
        staging.write_text(json.dumps(avus))
        os.replace(staging, target)

    def query(self, *columns: Any) -> _Query:
        return _Query(self, columns)

    def cleanup(self) -> None:
        pass


def session_from_environment() -> FakeSession:
    """The fake zone at ``$NRT_FAKE_IRODS_ROOT`` (for worker processes)."""
    return FakeSession(os.environ["NRT_FAKE_IRODS_ROOT"])
