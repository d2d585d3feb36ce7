"""Single flight: one signature asked for twice at once is computed once.

Within a process a per-signature lock; across processes that share a cache
directory an ``flock`` on ``<root>/.locks/<sig>.lock``. The caller re-checks the
cache after acquiring, so the second asker finds the first one's result.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path


class SingleFlight:
    def __init__(self, lock_dir: Path | None) -> None:
        self.lock_dir = lock_dir
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def __call__(self, signature: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(signature, (threading.Lock(), 0))
            self._locks[signature] = (lock, users + 1)
        try:
            with lock, self._file_lock(signature):
                yield
        finally:
            with self._guard:
                lock, users = self._locks[signature]
                if users == 1:
                    del self._locks[signature]
                else:
                    self._locks[signature] = (lock, users - 1)

    @contextlib.contextmanager
    def _file_lock(self, signature: str) -> Iterator[None]:
        if self.lock_dir is None:
            yield
            return
        try:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            yield  # read-only or unwritable cache: in-process exclusion only
            return
        path = self.lock_dir / f"{signature}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The file may have been removed (by gc) between open and flock: retry on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
