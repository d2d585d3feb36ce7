"""Bad graphs and bad storage give one clear error and leave the cache consistent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import nrt
from nrt.cache import Cache, CacheWriteError


def test_input_that_is_not_an_element_is_refused_at_definition():
    with pytest.raises(
        nrt.GraphError, match=r"Bad\.input_x must be an Element class or instance, got int"
    ):

        class Bad(nrt.Element):
            input_x = 5


def test_input_override_that_is_not_an_element():
    class Up(nrt.Element):
        def main(self):
            self.v = 1

    class Down(nrt.Element):
        input_u = Up

    with pytest.raises(nrt.GraphError, match=r"Down\(input_u=\.\.\.\) must be an Element"):
        Down(input_u="Up")


def test_unknown_keyword_lists_the_valid_ones():
    class P(nrt.Element):
        threshold = 6.0
        input_q = nrt.Element

    with pytest.raises(
        TypeError, match=r"unknown keyword\(s\) treshold; parameters: threshold; inputs: input_q"
    ):
        P(treshold=5)


def test_cycle_is_reported_with_its_path():
    class A(nrt.Element):
        pass

    class B(nrt.Element):
        input_a = A

    A.input_b = B  # closes the loop after both exist
    with pytest.raises(nrt.GraphError, match=r"cycle in the element graph: A -> B -> A"):
        A()


class Stored(nrt.Element):
    cached = True

    def main(self):
        self.v = [1, 2, 3]


def test_cache_directory_that_cannot_be_created_names_it_and_the_fix(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("NRT_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(
        CacheWriteError, match=rf"cache directory {blocker}/cache is not writable.*NRT_CACHE_DIR"
    ):
        Stored().get(cache=Cache.open())


FULL_DISK = """
import resource, signal, sys
import numpy as np
import nrt
from nrt.cache import CacheWriteError

class Big(nrt.Element):
    cached = True
    def main(self):
        self.data = np.zeros(2_000_000)  # 16 MB, over the limit below

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
try:
    Big().get()
except CacheWriteError as exc:
    print("ERROR:", exc)
    sys.exit(3)
"""


def test_full_disk_during_a_write_is_a_clear_error_and_leaves_no_half_result(
    tmp_path, isolated_nrt_dirs
):
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent(FULL_DISK))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3, out.stderr
    assert "could not write Big" in out.stdout and "File too large" in out.stdout
    assert "partial write was discarded" in out.stdout
    report = Cache.open().verify()
    assert report["checked"] == 0 and report["corrupt"] == []
    assert not list((isolated_nrt_dirs["cache"] / ".tmp").iterdir())
