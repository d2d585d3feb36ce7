"""The cache index when the disk refuses its writes (real SQLite, a real EFBIG from
RLIMIT_FSIZE in a child process): the write is skipped and logged, the index stays
readable, and it is written again once the limit is lifted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, logging, resource, signal, sys
from pathlib import Path
from nrt.cache.index import Index

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = Path(sys.argv[1])
index = Index(path)
manifest = {"signature": "aa" * 32, "element": "Small", "files": {}}
index.record(manifest, "local")
used = max(p.stat().st_size for p in path.parent.iterdir())
resource.setrlimit(resource.RLIMIT_FSIZE, (used, resource.RLIM_INFINITY))
big = {"code": "x" * 200_000}  # pages beyond the limit: EFBIG
refused = [
    index.remember("bb" * 32, "Big", big),
    index.record({"signature": "cc" * 32, "element": "Big", "files": {}, "components": big}, "local"),
]
readable = [row["signature"][:2] for row in index.products()]
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
index.remember("bb" * 32, "Big", big)
print(json.dumps({"refused": refused, "skipped": index.refused, "readable": readable,
                  "after": index.components("bb" * 32) == big}))
"""


def test_an_index_write_the_disk_refuses_is_skipped_and_logged(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "index.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["refused"] == [None, None] and result["skipped"] >= 2
    assert result["readable"] == ["aa"], "the rows written before are still there"
    assert result["after"], "written again once the limit is lifted"
    assert "cache index" in done.stderr and "cannot be written (disk I/O error" in done.stderr
    assert done.stderr.count("cannot be written") == 1, "logged once, not per write"
    assert "Traceback" not in done.stderr
