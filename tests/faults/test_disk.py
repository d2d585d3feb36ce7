"""The cache directory runs full: reported, alerts unaffected, and it recovers when space returns.

The cache is a 2 MiB tmpfs mounted for the test (ENOSPC is then the real
error a full disk gives), filled with a ballast file. One hk chunk is held back,
so the pointing is first handed to the quick-look by its grace time while the
disk is full, and again, with a new signature, once the chunk arrives after the
ballast was removed: the second quick-look must write its results to the cache.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess

import pytest

from tests.daemon.harness import (
    Collector,
    Running,
    alerts_near,
    cache_checksums,
    cache_verify,
    copy_telemetry,
    daemon_config,
    feed,
    metric,
    product_digests,
    unmissable,
    wait_until,
)
from tests.support.services import free_port


@contextlib.contextmanager
def small_filesystem(path, size: str = "2m"):
    """A tmpfs of `size` at `path` (needs CAP_SYS_ADMIN: fails in CI without, skips locally)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs for the full-disk test: {mounted.stderr.strip()}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory) -> int:
    """Write a ballast file until the file system is full; its size."""
    ballast, written = directory / "ballast", 0
    with open(ballast, "wb", buffering=0) as f:
        try:
            while True:
                written += f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return written


def test_cache_disk_full_then_space_returns(tmp_path, telemetry, mosquitto):
    sim_dir, truth = telemetry
    files = copy_telemetry(sim_dir, tmp_path / "sim")
    held = next(p for p in reversed(files) if p.name.startswith("hk_"))
    files.remove(held)
    port = free_port()
    config = daemon_config(tmp_path, mosquitto.url, port)
    collector = Collector(mosquitto.port, client_id="disk-collector")
    with small_filesystem(tmp_path / "cache") as cache:
        (cache / ".tmp").mkdir()  # the daemon's own check at start must pass; writes then fail
        assert fill(cache) > 0
        daemon = Running(config, tmp_path)
        try:
            feed(files, tmp_path / "inbox")
            bright = [b for b in truth["grbs"] if unmissable(b)]
            wait_until(
                lambda: all(alerts_near(collector.alerts(), b["onset"]) for b in bright),
                60,
                "every bright burst alerted while the cache disk is full",
            )
            wait_until(
                lambda: (metric(port, 'nrt_cache_write_errors_total{tier="local"}') or 0) > 0,
                60,
                "cache write errors counted",
            )
            wait_until(
                lambda: (metric(port, 'nrt_quicklook_runs_total{outcome="ok"}') or 0) >= 1,
                60,
                "the quick-look to finish despite the full cache",
            )
            assert len(product_digests(tmp_path / "state" / "products")) >= 4
            log = daemon.log()
            assert "No space left on device" in log and "free space" in log, log[-3000:]
            assert "kept in memory only" in log
            assert cache_checksums(cache) == {}, "nothing could have been written"

            (cache / "ballast").unlink()  # space returns
            feed([held], tmp_path / "inbox")
            wait_until(
                lambda: (metric(port, 'nrt_quicklook_runs_total{outcome="ok"}') or 0) >= 2,
                60,
                "the quick-look of the completed pointing",
            )
            written = cache_checksums(cache)
            assert written, "results are written to the cache again once there is space"
            assert daemon.stop() == 0
        finally:
            daemon.kill()
            collector.close()
        verify = cache_verify(tmp_path)
        assert verify.returncode == 0 and "0 corrupt" in verify.stdout, verify.stdout
        assert not [p for p in (cache / ".tmp").iterdir() if not p.name.startswith(".")], (
            "no staging leftovers from the failed writes"
        )
