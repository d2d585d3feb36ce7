"""Ingest speed: ``read_chunk`` on an ISGRI chunk of 1e6 events vs a bare astropy read.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--events N] [--repeat R]

The peer is what any script does with the file: ``fits.open`` and take every column of
the EVENTS table as a numpy array (memory-mapped, astropy's default, and without mmap).
Ours does more: reads the bytes, hashes them (sha256, on a second core for big files),
walks and checks the FITS structure, converts to native-endian canonical dtypes, and
validates TIME (finite, sorted, inside TSTART..TSTOP) and DETY/DETZ (0-127). The table
prints median wall times over interleaved repeats, events/s, and the ratio of the peer's
time to ours (>= 1 means we are as fast); "no hash" passes a precomputed sha256, as the
inbox does when it has already hashed the file to skip duplicates.

The run is repeated in a child process with glibc told to keep freed memory
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``): ours allocates fresh 16 MB
buffers per chunk, and on a busy machine the page faults of fresh memory dominate; a
daemon can run with the same environment (e.g. ``Environment=`` in its systemd unit).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from nrt.telemetry.formats import chunk_filename, read_chunk, write_chunk


def make_chunk(directory: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    t0 = 8.0e8
    columns = {
        "TIME": np.sort(rng.uniform(t0, t0 + 5.0, n)),
        "ENERGY": rng.uniform(15.0, 1000.0, n).astype(np.float32),
        "DETY": rng.integers(0, 128, n, dtype=np.int16),
        "DETZ": rng.integers(0, 128, n, dtype=np.int16),
    }
    path = directory / chunk_filename("isgri", "025600010010", 1)
    return write_chunk(path, "isgri", "025600010010", columns, t0, t0 + 5.0)


def bare_astropy(path: Path, memmap: bool) -> dict[str, np.ndarray]:
    with fits.open(path, memmap=memmap) as hdul:
        data = hdul["EVENTS"].data
        return {name: np.array(data[name]) for name in data.columns.names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_chunk(Path(tmp), args.events)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        size = path.stat().st_size
        cases: dict[str, Callable[[], object]] = {
            "astropy (memmap)": lambda: bare_astropy(path, True),
            "astropy (no memmap)": lambda: bare_astropy(path, False),
            "nrt read_chunk": lambda: read_chunk(path),
            "nrt read_chunk, no hash": lambda: read_chunk(path, sha256=digest),
            "sha256 alone": lambda: hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):  # interleaved, so load from others hits all cases alike
            for name, case in cases.items():
                start = time.perf_counter()
                case()
                times[name].append(time.perf_counter() - start)
    peer = statistics.median(times["astropy (memmap)"])
    malloc = "glibc keeps freed memory" if args.child else "default glibc malloc"
    print(
        f"ISGRI chunk: {args.events:,} events, {size / 1e6:.1f} MB, {args.repeat} repeats, "
        f"{malloc}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'case':28s} {'median ms':>10s} {'Mevents/s':>10s} {'astropy/ours':>13s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:28s} {median * 1e3:10.2f} {args.events / median / 1e6:10.1f} "
            f"{peer / median:13.2f}"
        )
    if not args.child:
        print()
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2**27), MALLOC_TRIM_THRESHOLD_=str(2**29))
        command = [sys.executable, __file__, "--child", "--events", str(args.events)]
        subprocess.run([*command, "--repeat", str(args.repeat)], env=env, check=True)


if __name__ == "__main__":
    main()
