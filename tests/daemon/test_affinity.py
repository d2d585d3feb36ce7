"""``[daemon] cpus``: which CPUs the daemon's threads run on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nrt import affinity
from nrt import config as configuration

TWO_CPUS = len(os.sched_getaffinity(0)) >= 2


def test_parse_accepts_one_all_and_cpu_lists_and_names_what_is_allowed():
    assert affinity.parse("one") == "one" and affinity.parse(" ALL ") == "all"
    assert affinity.parse("0,2-3") == {0, 2, 3}
    for bad in ("two", "0-", "a,b", "3-1", ""):
        with pytest.raises(ValueError, match="cpus"):
            affinity.parse(bad)


def test_config_check_names_the_key_its_value_and_what_is_allowed(tmp_path):
    path = tmp_path / "nrt.toml"
    path.write_text('[daemon]\ncpus = "both"\n')
    with pytest.raises(configuration.ConfigError) as caught:
        configuration.load(path)
    message = str(caught.value)
    assert "[daemon] cpus = 'both'" in message and "'one', 'all'" in message


def test_choose_keeps_to_the_cpus_the_process_may_use():
    assert affinity.choose("all", {0, 1}) is None
    assert affinity.choose("one", {3}) is None  # one CPU already: nothing to do
    one = affinity.choose("one", {2, 5, 7})
    assert one is not None and len(one) == 1 and one <= {2, 5, 7}
    assert affinity.choose("1-6", {0, 2, 5, 7}) == {2, 5}
    with pytest.raises(ValueError, match="none of these CPUs is available"):
        affinity.choose("9", {0, 1})


APPLY = """
import os, threading
from nrt import affinity
started = threading.Event()
threading.Thread(target=started.wait, daemon=True).start()  # a thread older than the call
chosen = affinity.apply({spec!r})
later = threading.Thread(target=lambda: print("later", sorted(os.sched_getaffinity(0))))
later.start(); later.join()
for task in os.listdir("/proc/self/task"):
    try:  # `later` may still be listed for a moment after join() while it exits
        print("task", sorted(os.sched_getaffinity(int(task))))
    except ProcessLookupError:
        pass
print("chosen", None if chosen is None else sorted(chosen))
started.set()
"""


def _apply(spec: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", APPLY.format(spec=spec)], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


@pytest.mark.skipif(not TWO_CPUS, reason="needs a process allowed on two CPUs or more")
def test_one_keeps_every_thread_older_and_newer_on_one_cpu():
    lines = _apply("one")
    chosen = next(line for line in lines if line.startswith("chosen"))
    cpu = chosen.split(" ", 1)[1]
    assert len(eval_list(cpu)) == 1
    others = [line.split(" ", 1)[1] for line in lines if line.startswith(("task", "later"))]
    assert len(others) >= 3 and set(others) == {cpu}


@pytest.mark.skipif(not TWO_CPUS, reason="needs a process allowed on two CPUs or more")
def test_all_leaves_the_process_where_it_was():
    lines = _apply("all")
    assert "chosen None" in lines
    allowed = str(sorted(os.sched_getaffinity(0)))
    assert all(line.split(" ", 1)[1] == allowed for line in lines if line.startswith("task"))


def test_a_system_call_filter_that_forbids_it_is_logged_not_fatal(monkeypatch, caplog):
    """Stand-in for seccomp (systemd's ~@resources), which needs systemd as PID 1 to apply
    for real: sched_setaffinity fails with EPERM, as it does under such a filter."""

    def forbidden(pid, cpus):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", forbidden)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert affinity.apply("one") is None
    assert "could not set the CPU affinity" in caplog.text and "sched_setaffinity" in caplog.text


def eval_list(text: str) -> list[int]:
    """``[0, 1]`` as printed by the child, parsed without eval."""
    return [int(x) for x in text.strip("[]").split(",") if x.strip()]
