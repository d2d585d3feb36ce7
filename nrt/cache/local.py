"""The local directory tier: ``<root>/<sig[:2]>/<sig>/manifest.json`` plus payload files.

A result is written into a temporary directory on the same file system, fsynced,
and renamed into place, so a reader never sees half a result and two writers of
the same signature both succeed (the second rename finds the first in place).
Payloads are verified against the manifest's sha256 the first time this process
reads them; after that they are trusted while their (inode, size, mtime) stay
the same. ``verify()`` re-checks everything.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from nrt import products
from nrt.cache.tier import Entry, TransferStats


class CacheWriteError(OSError):
    """A result could not be written to a cache directory (full disk, permissions)."""


def write_fix(err: int | None, root: Path) -> str:
    """What to do about a failed write under `root`, by its errno."""
    if err == errno.ENOSPC:
        return f"free space on the file system holding {root} or point NRT_CACHE_DIR elsewhere"
    if err == errno.EDQUOT:
        return (
            f"free space in your quota on {root}, raise the quota, or point NRT_CACHE_DIR elsewhere"
        )
    if err == errno.EFBIG:
        return (
            "a file went over the process's file-size limit (RLIMIT_FSIZE; or the largest "
            "file the file system holds), not out of space: raise or remove that limit "
            "(ulimit -f in the shell that starts nrt, LimitFSIZE= in its systemd unit)"
        )
    return f"check {root} (permissions, file system) or point NRT_CACHE_DIR elsewhere"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalTier:
    """Results as directories under a root on a local or shared file system."""

    name = "local"

    def __init__(self, root: Path | str, read_only: bool = False, name: str = "local") -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.name = name
        self.stats = TransferStats(latency_s=2e-4, bandwidth_bps=1e9)
        self._verified: dict[str, tuple] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ layout

    def path(self, signature: str) -> Path:
        return self.root / signature[:2] / signature

    def _tmp_root(self) -> Path:
        return self.root / ".tmp"

    def ensure_writable(self) -> None:
        """Create the root, or raise CacheWriteError saying which directory and what to do."""
        try:
            self._tmp_root().mkdir(parents=True, exist_ok=True)
            probe = self._tmp_root() / f".probe-{uuid.uuid4().hex}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise CacheWriteError(
                exc.errno,
                f"cache directory {self.root} is not writable ({exc.strerror}); "
                "set NRT_CACHE_DIR or `cache.dir` in the configuration to a writable directory",
            ) from None

    # ------------------------------------------------------------ interface

    def has(self, signature: str) -> bool:
        return (self.path(signature) / "manifest.json").is_file()

    def read_manifest(self, signature: str) -> dict | None:
        try:
            return json.loads((self.path(signature) / "manifest.json").read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            raise products.CorruptProduct(
                f"{self.path(signature) / 'manifest.json'}: unreadable manifest ({exc})"
            ) from None

    def get(self, signature: str) -> Entry | None:
        started = time.perf_counter()
        manifest = self.read_manifest(signature)
        if manifest is None:
            return None
        if manifest.get("signature") != signature:
            raise products.CorruptProduct(
                f"{self.path(signature)}: manifest names another signature"
            )
        directory = self.path(signature)
        self._verify_once(directory, manifest)
        entry = Entry(manifest, directory=directory)
        self.stats.record(time.perf_counter() - started, entry.nbytes)
        return entry

    def _verify_once(self, directory: Path, manifest: dict) -> None:
        files = manifest.get("files", {})
        stamp = []
        for name in sorted(files):
            try:
                st = (directory / name).stat()
            except FileNotFoundError:
                raise products.CorruptProduct(f"{directory / name}: payload missing") from None
            stamp.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
        key, stamp_t = str(directory), tuple(stamp)
        if self._verified.get(key) == stamp_t:
            return
        products.verify_files(directory, files)
        with self._lock:
            self._verified[key] = stamp_t

    def put(self, entry: Entry) -> None:
        """Write atomically: stage in ``<root>/.tmp``, fsync, rename into place."""
        if self.read_only:
            raise CacheWriteError(
                errno.EROFS, f"cache tier {self.name} at {self.root} is read-only"
            )
        signature = entry.signature
        final = self.path(signature)
        if final.is_dir():
            return  # same signature, same content: the first writer won
        self.ensure_writable()
        staging = self._tmp_root() / f"{signature}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        manifest = dict(entry.manifest)
        try:
            staging.mkdir()
            if entry.directory is not None:
                for name in manifest.get("files", {}):
                    shutil.copyfile(entry.directory / name, staging / name)
                    with open(staging / name, "rb+") as f:
                        os.fsync(f.fileno())
            elif entry.outputs is not None:
                owner = manifest.get("element", "element")
                tree, files = products.write_outputs(staging, entry.outputs, owner)
                manifest["outputs"], manifest["files"] = tree, files
            with open(staging / "manifest.json", "wb") as f:
                f.write(products.dumps_manifest(manifest))
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            _fsync_dir(final.parent)
        except products.ProductError:
            raise
        except OSError as exc:
            raise CacheWriteError(
                exc.errno,
                f"could not write {manifest.get('element', '?')} [{signature[:12]}] to "
                f"{self.root}: {exc.strerror or exc}; {write_fix(exc.errno, self.root)} "
                "(the cache is left consistent: the partial write was discarded)",
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        entry.manifest.update(manifest)
        entry.directory = final

    def delete(self, signature: str) -> bool:
        """Remove an entry: renamed aside first, so no reader sees it half-deleted."""
        final = self.path(signature)
        if not final.exists():
            return False
        self._tmp_root().mkdir(parents=True, exist_ok=True)
        doomed = self._tmp_root() / f"deleted-{signature}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(final, doomed)
        except FileNotFoundError:
            return False
        shutil.rmtree(doomed, ignore_errors=True)
        self._verified.pop(str(final), None)
        return True

    def cost(self, nbytes: int) -> float:
        return self.stats.cost(nbytes)

    # ------------------------------------------------------------ maintenance

    def signatures(self) -> Iterator[str]:
        """Every signature with a manifest in place."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                if (entry / "manifest.json").is_file():
                    yield entry.name

    def clean_staging(self, older_than: float = 3600.0) -> int:
        """Remove leftovers of writers that died mid-write."""
        removed = 0
        tmp = self._tmp_root()
        if not tmp.is_dir():
            return 0
        now = time.time()
        for item in tmp.iterdir():
            try:
                if now - item.stat().st_mtime > older_than or item.name.startswith("deleted-"):
                    shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
