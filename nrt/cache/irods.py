"""The iRODS tier: results as collections in an iRODS zone (python-irodsclient).

Layout mirrors the local tier: ``<collection>/<sig[:2]>/<sig>/manifest.json`` plus
the payload files, so a result moves between tiers unchanged. A result is
uploaded into ``<collection>/.tmp/<sig>.<uuid>`` and renamed into place (a
catalog operation), so no reader sees half a result; when two writers race,
the loser's copy is removed and both succeed.

Integrity: every upload asks the server to register a checksum (``regChksum``)
and compares it with the sha256 the manifest holds (iRODS writes sha2 checksums
as ``sha2:<base64 digest>``); a download is checked against both the registered
checksum and the manifest. Element, version and pointing (and signature, status,
size, run time) are AVUs on the result's collection, so ``imeta qu -C
nrt.element = Spectrum`` finds them. Files above ``parallel_threshold`` move with
the client's parallel transfer (``num_threads``).

Connection settings come from the standard iRODS environment file
(``$IRODS_ENVIRONMENT_FILE``, else ``~/.irods/irods_environment.json``). Every
call blocks; async callers use ``aget``/``aput``/``ahas``/``adelete``, which run
them in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import importlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from nrt import products
from nrt.cache.local import CacheWriteError
from nrt.cache.tier import Entry, TransferStats

#: AVU attribute names, all under one prefix so they never clash with a site's own.
AVU_PREFIX = "nrt."
#: Manifest fields written as AVUs on the result's collection.
AVU_FIELDS = ("signature", "element", "version", "pointing", "status")


def sha2_checksum(hex_sha256: str) -> str:
    """The iRODS form of a sha256 digest: ``sha2:`` + base64 of the raw digest."""
    return "sha2:" + base64.b64encode(bytes.fromhex(hex_sha256)).decode()


def default_environment_file() -> Path:
    found = os.environ.get("IRODS_ENVIRONMENT_FILE")
    return Path(found) if found else Path.home() / ".irods" / "irods_environment.json"


class IrodsTier:
    """Results as collections in iRODS, with registered sha2 checksums and AVUs."""

    def __init__(
        self,
        collection: str,
        session: Any = None,
        env_file: Path | str | None = None,
        read_only: bool = False,
        name: str = "irods",
        spool: Path | str | None = None,
        parallel_threshold: int = 32 << 20,
        threads: int = 4,
    ) -> None:
        if not collection.startswith("/"):
            raise ValueError(
                f"iRODS collection {collection!r} must be an absolute path such as "
                "/tempZone/home/alice/nrt-cache (set NRT_IRODS_COLLECTION)"
            )
        self.collection = collection.rstrip("/")
        self.read_only = read_only
        self.name = name
        self.env_file = Path(env_file) if env_file else default_environment_file()
        self.spool = Path(spool) if spool else Path(tempfile.gettempdir()) / "nrt-irods-spool"
        self.parallel_threshold = parallel_threshold
        self.threads = threads
        self.stats = TransferStats(latency_s=0.05, bandwidth_bps=50e6)
        self._session = session
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> IrodsTier:
        """``NRT_IRODS_COLLECTION`` (required), ``NRT_IRODS_READ_ONLY=1`` for a shared archive."""
        collection = os.environ.get("NRT_IRODS_COLLECTION", "")
        read_only = os.environ.get("NRT_IRODS_READ_ONLY", "") not in ("", "0", "false", "no")
        return cls(collection, read_only=read_only)

    # ------------------------------------------------------------ session

    @property
    def session(self) -> Any:
        """The iRODS session, opened on first use from the environment file.

        ``NRT_IRODS_SESSION_FACTORY=module:callable`` replaces that with a callable
        returning a session, for authentication the environment file does not cover
        (the tests use it to give Dask workers the in-repo fake).
        """
        with self._lock:
            factory = os.environ.get("NRT_IRODS_SESSION_FACTORY")
            if self._session is None and factory:
                module, _, attr = factory.partition(":")
                self._session = getattr(importlib.import_module(module), attr)()
            if self._session is None:
                from irods.session import iRODSSession

                if not self.env_file.is_file():
                    raise CacheWriteError(
                        errno.ENOENT,
                        f"iRODS environment file {self.env_file} not found; run `iinit` or set "
                        "IRODS_ENVIRONMENT_FILE to an irods_environment.json",
                    )
                self._session = iRODSSession(irods_env_file=str(self.env_file))
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None and hasattr(self._session, "cleanup"):
                self._session.cleanup()
            self._session = None

    # ------------------------------------------------------------ layout

    def path(self, signature: str) -> str:
        return f"{self.collection}/{signature[:2]}/{signature}"

    def _spool(self) -> Path:
        """Downloads land here, one directory per process (workers may share the spool)."""
        return self.spool / str(os.getpid())

    def _threads(self, nbytes: int) -> int:
        return self.threads if nbytes > self.parallel_threshold else 1

    # ------------------------------------------------------------ interface

    def has(self, signature: str) -> bool:
        return bool(self.session.data_objects.exists(f"{self.path(signature)}/manifest.json"))

    def get(self, signature: str) -> Entry | None:
        """Download into the spool directory, verified; None when iRODS does not hold it."""
        from irods.exception import CAT_NO_ROWS_FOUND, OBJ_PATH_DOES_NOT_EXIST, DoesNotExist

        # What the client raises for a missing object depends on where it finds out.
        missing = (DoesNotExist, OBJ_PATH_DOES_NOT_EXIST, CAT_NO_ROWS_FOUND)
        started = time.perf_counter()
        remote = self.path(signature)
        staging = self._spool() / ".tmp" / f"{signature}.{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        try:
            try:
                obj = self.session.data_objects.get(
                    f"{remote}/manifest.json", str(staging / "manifest.json")
                )
            except missing:
                return None
            raw = (staging / "manifest.json").read_bytes()
            self._check_registered(obj, products.file_sha256(staging / "manifest.json"), remote)
            try:
                manifest = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise products.CorruptProduct(
                    f"irods:{remote}/manifest.json: unreadable manifest ({exc})"
                ) from None
            if manifest.get("signature") != signature:
                raise products.CorruptProduct(f"irods:{remote}: manifest names another signature")
            for name, meta in manifest.get("files", {}).items():
                try:
                    obj = self.session.data_objects.get(
                        f"{remote}/{name}",
                        str(staging / name),
                        num_threads=self._threads(meta["size"]),
                    )
                except missing:
                    raise products.CorruptProduct(
                        f"irods:{remote}/{name}: payload missing"
                    ) from None
                self._check_registered(obj, meta["sha256"], remote)
            try:
                products.verify_files(staging, manifest.get("files", {}))
            except products.CorruptProduct as exc:
                raise products.CorruptProduct(f"irods:{remote}: {exc}") from None
            final = self._spool() / signature
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            entry = Entry(manifest, directory=final)
            self.stats.record(time.perf_counter() - started, entry.nbytes)
            return entry
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _check_registered(obj: Any, hex_sha256: str, where: str) -> None:
        registered = getattr(obj, "checksum", None)
        if registered and registered != sha2_checksum(hex_sha256):
            raise products.CorruptProduct(
                f"irods:{where}/{obj.name}: registered checksum {registered} does not match "
                f"the content (sha256 {hex_sha256[:12]}...)"
            )

    def put(self, entry: Entry) -> None:
        """Upload into a staging collection, check registered checksums, add AVUs, rename."""
        if self.read_only:
            raise CacheWriteError(
                errno.EROFS, f"cache tier {self.name} ({self.collection}) is read-only"
            )
        started = time.perf_counter()
        signature = entry.signature
        final = self.path(signature)
        if self.session.collections.exists(final):
            return  # same signature, same content: the first writer won
        with tempfile.TemporaryDirectory(prefix="nrt-irods-put-") as scratch:
            directory, manifest = self._payload_directory(entry, Path(scratch))
            manifest_path = Path(scratch) / "manifest.json"
            manifest_path.write_bytes(products.dumps_manifest(manifest))
            uploads = [(name, directory / name, meta) for name, meta in manifest["files"].items()]
            uploads.append(
                (
                    "manifest.json",
                    manifest_path,
                    {
                        "sha256": products.file_sha256(manifest_path),
                        "size": manifest_path.stat().st_size,
                    },
                )
            )
            staging = f"{self.collection}/.tmp/{signature}.{uuid.uuid4().hex[:8]}"
            try:
                self._upload(staging, uploads, manifest)
                self._publish(staging, final)
            except Exception as exc:
                self._remove_quietly(staging)
                if isinstance(exc, CacheWriteError):
                    raise
                raise CacheWriteError(
                    errno.EIO,
                    f"could not write {manifest.get('element', '?')} [{signature[:12]}] to "
                    f"irods:{self.collection}: {type(exc).__name__}: {exc}",
                ) from exc
        entry.manifest.update(manifest)
        self.stats.record(time.perf_counter() - started, entry.nbytes)

    def _payload_directory(self, entry: Entry, scratch: Path) -> tuple[Path, dict[str, Any]]:
        """A directory holding the payload files, and the complete manifest."""
        manifest = dict(entry.manifest)
        manifest.setdefault("files", {})
        if entry.directory is not None or entry.failed:
            return entry.directory or scratch, manifest
        owner = manifest.get("element", "element")
        tree, files = products.write_outputs(scratch, entry.outputs or {}, owner)
        manifest["outputs"], manifest["files"] = tree, files
        return scratch, manifest

    def _upload(self, staging: str, uploads: list, manifest: dict[str, Any]) -> None:
        from irods import keywords as kw
        from irods.meta import AVUOperation, iRODSMeta

        session = self.session
        session.collections.create(staging)
        for name, local, meta in uploads:
            session.data_objects.put(
                str(local),
                f"{staging}/{name}",
                num_threads=self._threads(meta["size"]),
                **{kw.REG_CHKSUM_KW: ""},
            )
            obj = session.data_objects.get(f"{staging}/{name}")
            registered = getattr(obj, "checksum", None) or ""
            if not registered.startswith("sha2:"):
                raise CacheWriteError(
                    errno.EIO,
                    f"irods:{staging}/{name}: the server registered checksum {registered!r}, "
                    "not sha2; set default_hash_scheme to SHA256 in the server configuration",
                )
            if registered != sha2_checksum(meta["sha256"]):
                raise CacheWriteError(
                    errno.EIO,
                    f"irods:{staging}/{name}: transferred bytes do not match (registered "
                    f"{registered}, expected {sha2_checksum(meta['sha256'])})",
                )
        avus = {f: manifest.get(f) for f in AVU_FIELDS}
        avus["size"] = sum(m["size"] for m in manifest["files"].values())
        avus["run_seconds"] = manifest.get("run_seconds")
        ops = [
            AVUOperation(operation="add", avu=iRODSMeta(AVU_PREFIX + key, str(value)))
            for key, value in avus.items()
            if value is not None and value != ""
        ]
        session.collections.get(staging).metadata.apply_atomic_operations(*ops)

    def _publish(self, staging: str, final: str) -> None:
        """Rename the staging collection into place; a lost race removes our copy."""
        session = self.session
        parent = final.rsplit("/", 1)[0]
        if not session.collections.exists(parent):
            session.collections.create(parent)
        if session.collections.exists(final):
            self._remove_quietly(staging)
            return
        session.collections.move(staging, final)
        # Moving onto a collection that appeared meanwhile nests ours inside it: undo that.
        nested = f"{final}/{staging.rsplit('/', 1)[1]}"
        if session.collections.exists(nested):
            self._remove_quietly(nested)

    def _remove_quietly(self, path: str) -> None:
        try:
            if self.session.collections.exists(path):
                self.session.collections.remove(path, recurse=True, force=True)
        except Exception:  # cleanup of a failed write must not hide the original error
            pass

    def delete(self, signature: str) -> bool:
        if self.read_only:
            raise CacheWriteError(
                errno.EROFS, f"cache tier {self.name} ({self.collection}) is read-only"
            )
        final = self.path(signature)
        if not self.session.collections.exists(final):
            return False
        self.session.collections.remove(final, recurse=True, force=True)
        shutil.rmtree(self._spool() / signature, ignore_errors=True)
        return True

    def cost(self, nbytes: int) -> float:
        return self.stats.cost(nbytes)

    # ------------------------------------------------------------ queries

    def avus(self, signature: str) -> dict[str, str]:
        """The ``nrt.*`` AVUs on a result's collection, prefix removed."""
        coll = self.session.collections.get(self.path(signature))
        return {
            m.name[len(AVU_PREFIX) :]: m.value
            for m in coll.metadata.items()
            if m.name.startswith(AVU_PREFIX)
        }

    def find(self, **avus: str) -> list[str]:
        """Signatures whose collection carries every given AVU (``element="Spectrum"``)."""
        from irods.models import Collection, CollectionMeta

        found: set[str] | None = None
        for key, value in avus.items():
            query = self.session.query(Collection.name).filter(
                CollectionMeta.name == AVU_PREFIX + key, CollectionMeta.value == str(value)
            )
            names = {
                row[Collection.name].rsplit("/", 1)[1]
                for row in query
                if row[Collection.name].startswith(self.collection + "/")
                and "/.tmp/" not in row[Collection.name]
            }
            found = names if found is None else found & names
        return sorted(found or ())

    # ------------------------------------------------------------ async callers

    async def ahas(self, signature: str) -> bool:
        return await asyncio.to_thread(self.has, signature)

    async def aget(self, signature: str) -> Entry | None:
        return await asyncio.to_thread(self.get, signature)

    async def aput(self, entry: Entry) -> None:
        await asyncio.to_thread(self.put, entry)

    async def adelete(self, signature: str) -> bool:
        return await asyncio.to_thread(self.delete, signature)
