"""Execution: restore only what is needed, recompute exactly what changed, run once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import pytest

import nrt
from nrt.cache import Cache

RUNS: Counter = Counter()


def chain(version3: str = "v1"):
    """Five elements in a chain, E1 -> E5; E3's version is the knob."""

    class E1(nrt.Element):
        cached = True
        n = 4

        def main(self):
            RUNS["E1"] += 1
            self.x = list(range(self.n))

    class E2(nrt.Element):
        cached = True
        input_a = E1

        def main(self):
            RUNS["E2"] += 1
            self.x = [v * 2 for v in self.input_a.x]

    class E3(nrt.Element):
        cached = True
        version = version3
        input_a = E2

        def main(self):
            RUNS["E3"] += 1
            self.x = [v + 1 for v in self.input_a.x]

    class E4(nrt.Element):
        cached = True
        input_a = E3

        def main(self):
            RUNS["E4"] += 1
            self.x = sum(self.input_a.x)

    class E5(nrt.Element):
        cached = True
        input_a = E4

        def main(self):
            RUNS["E5"] += 1
            self.total = self.input_a.x

    return E5


@pytest.fixture(autouse=True)
def reset_runs():
    RUNS.clear()


def test_warm_target_restores_only_itself():
    E5 = chain()
    assert E5().get().total == 16
    assert RUNS == Counter({f"E{i}": 1 for i in range(1, 6)})
    RUNS.clear()
    fresh = Cache.open()
    target = E5().get(cache=fresh)
    assert target.total == 16 and not RUNS
    assert not hasattr(target.input_a, "x"), "inputs of a cached target are not restored"


def test_version_bump_recomputes_exactly_the_element_and_below():
    chain("v1")().get()
    RUNS.clear()
    assert chain("v2")().get(cache=Cache.open()).total == 16
    assert RUNS == Counter({"E3": 1, "E4": 1, "E5": 1})


def test_independent_branches_run_concurrently():
    barrier = threading.Barrier(2, timeout=5)

    class Left(nrt.Element):
        def main(self):
            barrier.wait()  # deadlocks (BrokenBarrierError) unless Right runs at the same time
            self.v = 1

    class Right(nrt.Element):
        def main(self):
            barrier.wait()
            self.v = 2

    class Join(nrt.Element):
        input_l = Left
        input_r = Right

        def main(self):
            self.v = self.input_l.v + self.input_r.v

    assert Join().get().v == 3


def test_shared_input_instances_run_once():
    class Base(nrt.Element):
        def main(self):
            RUNS["Base"] += 1
            self.v = 1

    class Two(nrt.Element):
        input_x = Base
        input_y = Base(v=None) if False else Base

        def main(self):
            self.v = self.input_x.v + self.input_y.v

    assert Two().get().v == 2
    assert RUNS["Base"] == 1


def test_single_flight_across_threads():
    class Slow(nrt.Element):
        cached = True

        def main(self):
            RUNS["Slow"] += 1
            time.sleep(0.3)
            self.v = 1

    threads = [threading.Thread(target=lambda: Slow().get()) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert RUNS["Slow"] == 1


SLOW_MODULE = """
import os, sys, time
import nrt

class SlowShared(nrt.Element):
    cached = True
    def main(self):
        with open(os.environ["RUN_LOG"], "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.0)
        self.v = 42

if __name__ == "__main__":
    print(SlowShared().get().v)
"""


def test_single_flight_across_processes(tmp_path):
    script = tmp_path / "slow_shared.py"
    script.write_text(textwrap.dedent(SLOW_MODULE))
    env = {**os.environ, "RUN_LOG": str(tmp_path / "runs.log")}
    procs = [
        subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["42", "42", "42"]
    assert len((tmp_path / "runs.log").read_text().split()) == 1


def test_analysis_exception_is_cached_and_fails_dependents_without_running():
    class NoData(nrt.Element):
        cached = True
        negative_ttl = 60

        def main(self):
            RUNS["NoData"] += 1
            raise nrt.AnalysisException("no events in this pointing")

    class Downstream(nrt.Element):
        cached = True
        input_d = NoData

        def main(self):
            RUNS["Downstream"] += 1
            self.v = 1

    with pytest.raises(nrt.AnalysisException, match="no events in this pointing"):
        Downstream().get()
    with pytest.raises(nrt.AnalysisException, match="input NoData failed"):
        Downstream().get(cache=Cache.open())  # from disk this time
    assert RUNS == Counter({"NoData": 1})


def test_negative_result_expires():
    class Flaky(nrt.Element):
        cached = True
        negative_ttl = 0.2

        def main(self):
            RUNS["Flaky"] += 1
            if RUNS["Flaky"] == 1:
                raise nrt.AnalysisException("not yet")
            self.v = 1

    with pytest.raises(nrt.AnalysisException):
        Flaky().get()
    time.sleep(0.3)
    assert Flaky().get().v == 1
    assert RUNS["Flaky"] == 2


def test_unexpected_errors_are_not_cached_and_name_element_and_signature():
    class Broken(nrt.Element):
        cached = True

        def main(self):
            RUNS["Broken"] += 1
            raise ZeroDivisionError("boom")

    element = Broken()
    for _ in range(2):
        with pytest.raises(
            nrt.ElementError,
            match=rf"Broken \[{element.signature[:12]}\] failed: "
            r"ZeroDivisionError: boom",
        ):
            Broken().get()
    assert RUNS["Broken"] == 2
