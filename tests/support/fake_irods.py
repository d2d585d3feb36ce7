"""An in-process fake of the small part of python-irodsclient that ``IrodsTier`` uses.

No iRODS server can be installed on the test machine, so the tier's shared test
suite also runs against this. It keeps data objects as real files under a
directory, registers sha2 checksums at put time in its own "catalog" (so bytes
damaged afterwards no longer match, as on a real resource), keeps AVUs per
collection, and raises python-irodsclient's own exception classes. It follows
the client's semantics where the tier depends on them: ``collections.move``
onto an existing collection moves *into* it; ``data_objects.get`` without a
local path only returns the object; a download onto an existing file needs the
force flag. It records the ``num_threads`` each transfer asked for.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import threading
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
        return list(self._session.avus.get(self._path, []))

    def get_all(self, key: str) -> list[iRODSMeta]:
        return [m for m in self.items() if m.name == key]

    def apply_atomic_operations(self, *ops: Any) -> None:
        with self._session.lock:
            avus = self._session.avus.setdefault(self._path, [])
            for op in ops:
                if op.operation == "add":
                    avus.append(op.avu)
                else:
                    avus[:] = [m for m in avus if (m.name, m.value) != (op.avu.name, op.avu.value)]


class FakeCollection:
    def __init__(self, session: FakeSession, path: str) -> None:
        self.path = path
        self.name = path.rsplit("/", 1)[1]
        self.metadata = FakeMetadata(session, path)


class _Collections:
    def __init__(self, session: FakeSession) -> None:
        self.s = session

    def exists(self, path: str) -> bool:
        return self.s.local(path).is_dir()

    def get(self, path: str) -> FakeCollection:
        if not self.exists(path):
            raise CollectionDoesNotExist()
        return FakeCollection(self.s, path.rstrip("/"))

    def create(self, path: str, recurse: bool = True, **options: Any) -> FakeCollection:
        self.s.local(path).mkdir(parents=recurse, exist_ok=True)
        return self.get(path)

    def remove(self, path: str, recurse: bool = True, force: bool = False, **options: Any) -> None:
        if not self.exists(path):
            raise CollectionDoesNotExist()
        shutil.rmtree(self.s.local(path))
        with self.s.lock:
            for table in (self.s.avus, self.s.checksums):
                for key in [k for k in table if k == path or k.startswith(path + "/")]:
                    del table[key]

    def move(self, src_path: str, dest_path: str) -> None:
        if not self.exists(src_path):
            raise CollectionDoesNotExist()
        if self.exists(dest_path):
            dest_path = f"{dest_path}/{src_path.rsplit('/', 1)[1]}"
        self.s.local(src_path).rename(self.s.local(dest_path))
        with self.s.lock:
            for table in (self.s.avus, self.s.checksums):
                for key in [k for k in table if k == src_path or k.startswith(src_path + "/")]:
                    table[dest_path + key[len(src_path) :]] = table.pop(key)


class _DataObjects:
    def __init__(self, session: FakeSession) -> None:
        self.s = session

    def exists(self, path: str) -> bool:
        return self.s.local(path).is_file()

    def get(
        self, path: str, local_path: str | None = None, num_threads: int = 0, **options: Any
    ) -> FakeDataObject:
        source = self.s.local(path)
        if not self.s.local(path.rsplit("/", 1)[0]).is_dir():
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
        return FakeDataObject(path, source.stat().st_size, self.s.checksums.get(path))

    def put(self, local_path: str, irods_path: str, num_threads: int = 0, **options: Any) -> None:
        target = self.s.local(irods_path)
        if not target.parent.is_dir():
            raise CollectionDoesNotExist()
        if target.exists() and kw.FORCE_FLAG_KW not in options:
            raise OVERWRITE_WITHOUT_FORCE_FLAG
        self.s.transfers.append(("put", irods_path, num_threads))
        shutil.copyfile(local_path, target)
        with self.s.lock:
            if kw.REG_CHKSUM_KW in options:
                digest = hashlib.sha256(target.read_bytes()).digest()
                self.s.checksums[irods_path] = "sha2:" + base64.b64encode(digest).decode()
            else:
                self.s.checksums.pop(irods_path, None)

    def unlink(self, path: str, force: bool = False, **options: Any) -> None:
        if not self.exists(path):
            raise DataObjectDoesNotExist()
        self.s.local(path).unlink()
        self.s.checksums.pop(path, None)


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
        with self.s.lock:
            snapshot = {k: list(v) for k, v in self.s.avus.items()}
        for path, avus in sorted(snapshot.items()):
            for m in avus:
                fields = {CollectionMeta.name: m.name, CollectionMeta.value: m.value}
                if all(fields[c.query_key] == c.value for c in self.criteria):
                    yield {Collection.name: path}
                    break


class FakeSession:
    """Stands in for ``irods.session.iRODSSession`` (data under `root`, zone `/tempZone`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.checksums: dict[str, str] = {}
        self.avus: dict[str, list[iRODSMeta]] = {}
        self.transfers: list[tuple[str, str, int]] = []
        self.collections = _Collections(self)
        self.data_objects = _DataObjects(self)

    def local(self, path: str) -> Path:
        parts = [p for p in path.split("/") if p]
        if ".." in parts:
            raise ValueError(f"bad iRODS path {path!r}")
        return self.root.joinpath(*parts)

    def query(self, *columns: Any) -> _Query:
        return _Query(self, columns)

    def cleanup(self) -> None:
        pass
