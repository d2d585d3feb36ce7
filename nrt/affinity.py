"""Which CPUs the daemon's threads run on (``[daemon] cpus``).

The daemon is one Python process whose threads (the loop, the ingest log, the
stream detectors, the readers, the quick-look) hand the GIL to one another many
times per chunk. Measured on this project's 2-core machine (README, "Measured"):
kept on one CPU, a 24 h replay ran 1172x real time against 840x on both, with the
same alert latency; handing the GIL to a thread on the other core costs more than
the numpy work that runs there in parallel gains. So ``"one"`` is the default;
``"all"`` leaves the process where it was started (systemd's ``CPUAffinity=``, or
``taskset``), and a list like ``"0,2-3"`` chooses.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: What ``[daemon] cpus`` accepts, for error messages.
ALLOWED = "'one', 'all', or CPU numbers like '1' or '0,2-3'"


def parse(spec: str) -> str | frozenset[int]:
    """``"one"``, ``"all"``, or the set of CPUs a list names; ValueError otherwise."""
    text = spec.strip().lower()
    if text in ("one", "all"):
        return text
    cpus: set[int] = set()
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise ValueError(f"cpus = {spec!r}: allowed: {ALLOWED}")
        first, last = int(lo), int(hi or lo)
        if last < first:
            raise ValueError(f"cpus = {spec!r}: the range {part.strip()!r} goes backwards")
        cpus.update(range(first, last + 1))
    return frozenset(cpus)


def choose(spec: str, allowed: set[int] | None = None) -> set[int] | None:
    """The CPUs to run on, among those the process may use (None: leave it as it is).

    ``"one"`` takes one of the allowed CPUs by process id, so several daemons on one
    host (a replay beside the live one) spread over the cores rather than share one.
    """
    wanted = parse(spec)
    allowed = set(os.sched_getaffinity(0)) if allowed is None else allowed
    if wanted == "all" or len(allowed) <= 1:
        return None
    if wanted == "one":
        return {sorted(allowed)[os.getpid() % len(allowed)]}
    usable = set(wanted) & allowed
    if not usable:
        raise ValueError(
            f"[daemon] cpus = {spec!r}: none of these CPUs is available to this process "
            f"(it may use {_ranges(allowed)}); name some of those, or 'one' or 'all'"
        )
    return usable


def apply(spec: str) -> set[int] | None:
    """Keep every thread of this process (those running now and, by inheritance, those
    started later) on the CPUs ``spec`` chooses; the set, or None if left as it was.

    Called by the commands that run a daemon (``nrt run``, ``replay``, ``demo``), before
    their threads start; a CPU list this host cannot give is logged, not fatal (the
    alerts matter more than where they are computed).
    """
    try:
        cpus = choose(spec)
    except ValueError as exc:
        log.error("%s; running on every CPU it may use", exc)
        return None
    if cpus is None:
        return None
    try:
        pin(cpus)
    except OSError as exc:  # EPERM: a system-call filter (systemd's ~@resources) forbids it
        log.warning(
            "[daemon] cpus = %r: could not set the CPU affinity (%s); running on every CPU "
            "it may use (under systemd, allow sched_setaffinity as systemd/nrt.service does)",
            spec,
            exc,
        )
        return None
    log.info("running on CPU %s ([daemon] cpus = %r)", _ranges(cpus), spec)
    return cpus


def pin(cpus: set[int]) -> None:
    """Every thread of this process on ``cpus``: this one and those it starts from now
    (OSError if refused), and those started before."""
    os.sched_setaffinity(0, cpus)
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError, PermissionError):  # one that just ended
            os.sched_setaffinity(int(task.name), cpus)


def _ranges(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))
