"""Every kind of bad inbox input is quarantined with a reason; good files keep flowing."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from nrt.telemetry.formats import chunk_bytes
from nrt.telemetry.ingest import IngestLog, Problem, Quarantine
from tests.sources import factory as f
from tests.sources.harness import inbox_running


def _without_column(data: bytes, column: str) -> bytes:
    with fits.open(io.BytesIO(data)) as hdul:
        table = hdul[1]
        keep = [c for c in table.columns if c.name != column]
        header = table.header.copy()
        new = fits.BinTableHDU.from_columns(keep, header=header, name=table.name)
        out = io.BytesIO()
        fits.HDUList([hdul[0].copy(), new]).writeto(out)
    return out.getvalue()


def _acs_with_times(times: np.ndarray) -> bytes:
    counts = np.full(len(times), 4500)
    return chunk_bytes("acs", f.P1, {"TIME": times, "COUNTS": counts}, 1000.0, 1005.0)


def bad_inputs(outside: Path) -> dict[bytes, tuple[bytes | None, str]]:
    """file name (bytes: may be any name) -> (content, words the reason must contain)."""
    good = f.acs()
    times = 1000.0 + 0.05 * np.arange(100)
    nan_times, back_times = times.copy(), times.copy()
    nan_times[10] = np.nan
    back_times[[20, 21]] = back_times[[21, 20]]
    return {
        b"acs_025600010010_000101.fits": (good[: len(good) - 3000], "truncated"),
        b"acs_025600010010_000102.fits": (
            good.replace(b"EXTNAME = 'RATE    '", b"EXTNAME = 'SPECTRUM'"),
            "RATE",
        ),
        b"acs_025600010010_000103.fits": (_without_column(good, "COUNTS"), "COUNTS"),
        b"acs_025600010010_000104.fits": (_acs_with_times(nan_times), "non-finite"),
        b"acs_025600010010_000105.fits": (_acs_with_times(back_times), "decreases"),
        b"acs_025600010010_000106.fits": (f.acs(pointing=f.P2), "does not match"),
        b"acs_025600010010_000107.fits": (b"\0" * 20000, "not FITS"),
        b"acs_025600010010_000108.fits": (None, "exceeds"),  # 2 GB sparse, see below
        b"acs 025600010010 000109.fits": (good, "characters outside"),
        b"..acs_025600010010_000110.fits": (good, None),  # a dotfile: ignored, not quarantined
        b"acs_\xff\n_000111.fits": (good, "characters outside"),
        b"a" * 240 + b".fits": (good, "longer than 200"),
        b"README.txt": (b"hello", "file name"),
        b"acs_025600010010_000112.fits": ("symlink", "symbolic link"),
        b"acs_025600010010_000113.fits": ("fifo", "named pipe"),
    }


def test_bad_inbox_files_are_quarantined_with_reasons_while_good_ones_flow(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "acs_025600010010_000001.fits"
    secret.write_bytes(f.acs(seed=99))
    cases = bad_inputs(outside)

    async def scenario() -> None:
        async with inbox_running(tmp_path) as r:
            inbox_b = os.fsencode(r.inbox)
            expected_good = []
            for i, (raw_name, (content, _words)) in enumerate(cases.items()):
                path_b = os.path.join(inbox_b, raw_name)
                if content == "symlink":
                    os.symlink(os.fsencode(secret), path_b)
                elif content == "fifo":
                    os.mkfifo(path_b)
                elif content is None:
                    with open(path_b, "wb") as fh:  # 2 GB of zeros, sparse: costs no disk
                        fh.truncate(2 * 1024**3)
                else:
                    tmp = os.path.join(inbox_b, b".incoming.part")
                    with open(tmp, "wb") as fh:
                        fh.write(content)
                    os.replace(tmp, path_b)
                good_name = f.name("hk", seq=i)
                f.rename_in(r.inbox, good_name, f.hk(t0=1000.0 + 5 * i))
                expected_good.append(good_name)
            got = [(await r.next()).name for _ in expected_good]
            assert got == expected_good  # every good file, in order, despite the bad ones
            await asyncio.sleep(0.3)
            assert await r.quiet() == []

            reasons = r.reasons()
            expect_q = {n: w for n, (_c, w) in cases.items() if w is not None}
            assert len(reasons) == len(expect_q), sorted(reasons)
            by_original = {reason["name"]: reason for reason in reasons.values()}
            for raw_name, words in expect_q.items():
                shown = os.fsdecode(raw_name).encode("utf-8", "backslashreplace").decode()
                reason = by_original[shown]
                assert words in reason["problem"], (raw_name, reason)
                assert reason["fix"] and reason["time"].endswith("Z")
                assert reason["source"] == "inbox"
            # everything quarantined sits inside the quarantine, under a harmless name
            for entry in r.quarantine.directory.iterdir():
                assert entry.parent == r.quarantine.directory
                assert entry.name.isascii() and " " not in entry.name and "\n" not in entry.name
            # the symlink was moved as a link; its target was neither read nor moved
            assert secret.exists()
            links = [p for p in r.quarantine.directory.iterdir() if p.is_symlink()]
            assert len(links) == 1 and os.readlink(links[0]) == str(secret)
            # only the dotfile stays in the inbox, beside the good files
            left = {p.name for p in r.inbox.iterdir()}
            assert left == {*expected_good, "..acs_025600010010_000110.fits"}
            assert r.log.counts[("inbox", "quarantined")] == len(expect_q)
            assert len(r.log.quarantined()) == len(expect_q)

    asyncio.run(scenario())


def test_same_bad_bytes_sent_again_are_quarantined_again(tmp_path: Path) -> None:
    bad = f.acs()[:5000]

    async def scenario() -> None:
        async with inbox_running(tmp_path) as r:
            for seq in (1, 2):
                f.rename_in(r.inbox, f.name("acs", seq=seq), bad)
            f.rename_in(r.inbox, f.name("hk"), f.hk())
            await r.next()
            await asyncio.sleep(0.2)
            assert sorted(r.reasons()) == [f.name("acs", seq=1), f.name("acs", seq=2)]
            assert list(r.inbox.iterdir()) == [r.inbox / f.name("hk")]

    asyncio.run(scenario())


def test_quarantine_on_another_file_system(tmp_path: Path) -> None:
    other = Path(tempfile.mkdtemp(dir="/dev/shm"))  # tmpfs: rename(2) fails with EXDEV
    try:
        log = IngestLog()
        quarantine = Quarantine(other, log)
        bad = tmp_path / "acs_025600010010_000001.fits"
        bad.write_bytes(b"junk" * 1000)
        link = tmp_path / "acs_025600010010_000002.fits"
        link.symlink_to(bad)
        problem = Problem("payload: is not FITS", "send FITS")
        moved = quarantine.move(bad, "inbox", problem)
        assert moved == other / bad.name and moved.read_bytes() == b"junk" * 1000
        assert not bad.exists()
        assert quarantine.move(link, "inbox", problem) is not None
        assert not os.path.lexists(link)  # a link has no content to keep: removed
        assert sorted(p.name for p in other.glob("*.reason")) == [
            "acs_025600010010_000001.fits.reason",
            "acs_025600010010_000002.fits.reason",
        ]
        assert log.counts[("inbox", "quarantined")] == 2
        log.close()
    finally:
        shutil.rmtree(other)
