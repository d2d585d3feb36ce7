"""Soak: days of simulated telemetry pushed through the live daemon as fast as it takes them.

The real ``nrt run`` process watches an inbox; chunks of one continuous simulation
(:class:`nrt.telemetry.simulator.Simulation`, so pointing ids and file names never
repeat) are written and renamed into the inbox in time order, with at most ``window``
files waiting (the daemon's ``nrt_telemetry_files_total{outcome="accepted"}`` says how
far it is). Files are deleted from the inbox a few hours of data after they were
written, and only once the daemon has taken them, so disk use stays bounded. A real
mosquitto carries the alerts to a real subscriber (a persistent QoS 1 session), and the broker is restarted once per
simulated day. Cache GC runs every few seconds with a small ``max_bytes``.

While it runs, a sampler records the daemon's RSS and open descriptors
(``/proc/PID``), the SQLite files of the state directory, the cache directory's size
and the backlog, outbox and pointing gauges. At the end it checks that these stay
bounded and that every burst above threshold reached the subscriber.

    .venv/bin/python -m tests.soak.soak --days 7        # `make soak`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

from astropy.time import Time

from nrt.telemetry.formats import chunk_filename, write_chunk
from nrt.telemetry.simulator import Simulation, pointing_at
from tests.daemon.harness import pending_alerts_cli
from tests.support.mosquitto import Mosquitto
from tests.support.services import free_port, require_binary

DAY = 86400.0
#: A burst is "above threshold" when its expected ACS counts stand this many sigma above the
#: background (1.2 x Poisson of 9e4 count/s) in a window of 0.5 s (short) or 20 s (long),
#: as tests/daemon/harness.py ``unmissable``: far above the trigger's ~6-7 sigma at 1 FA/day.
THRESHOLD_SIGMA = 12.0
STATE_DBS = ("ingest.sqlite", "alerts-outbox.sqlite", "index.db")


def above_threshold(burst: dict) -> bool:
    window = 0.5 if burst["class"] == "short" else 20.0
    sigma = burst["acs_counts_expected"] / math.sqrt(1.2 * 9e4 * window)
    return burst["observed"] and sigma >= THRESHOLD_SIGMA


#: Data seconds a gap in the telemetry (the perigee passage) counts for when aging files.
MAX_GAP = 600.0
#: Files deleted at once, after the daemon has taken everything renamed so far.
DELETE_BATCH = 2000


@dataclass
class Plan:
    """What one soak does: how much data, which bursts and anomalies, how hard to push."""

    hours: float
    seed: int = 2026
    day_hours: float = 24.0  # the unit of feeding, deleting, broker restarts and growth
    grb_rate_per_day: float = 24.0
    bright_per_day: int = 2  # injected bright bursts per day, on top of the random ones
    anomalies_per_day: tuple[str, ...] = ("gain_jump", "hot_pixel", "hk_excursion")
    cache_max_bytes: str = "16M"
    memory_bytes: str = "64M"
    grace: str = "30s"  # the tracker forgets announced pointings 4 graces after their last chunk
    gc_interval: str = "5s"
    keep_files_for: float = 3 * 3600.0  # data seconds a file stays in the inbox
    window: int = 400  # files renamed in but not yet taken
    sample_every: float = 2.0
    broker_restarts: bool = True

    @property
    def days(self) -> int:
        return max(1, math.ceil(self.hours / self.day_hours))


@dataclass
class Sample:
    wall: float
    day: int
    rss_kb: int
    fds: int
    sqlite: dict[str, int]
    cache_bytes: int
    backlog: int
    outbox_pending: float
    pointings_waiting: float


@dataclass
class Result:
    plan: Plan
    chunks: int = 0
    data_hours: float = 0.0
    wall: float = 0.0
    files_tried: int = 0
    broker_restarts: int = 0
    bursts: list[dict] = field(default_factory=list)  # above threshold
    alerted: list[dict] = field(default_factory=list)  # of those, alerted
    alerts_received: int = 0
    anomalies: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    exit_status: int | None = None
    outbox_pending_after: int | None = None
    gc_evictions: int = 0
    feed_seconds: float = 0.0  # from the first file renamed in to the last one taken

    @property
    def lost(self) -> list[dict]:
        found = {b["index"] for b in self.alerted}
        return [b for b in self.bursts if b["index"] not in found]


# ------------------------------------------------------------------ measuring


def dir_bytes(root: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
                total += os.lstat(os.path.join(base, name)).st_size
    return total


def sqlite_bytes(state: Path) -> dict[str, int]:
    """Each database with its WAL (what the file system holds for it)."""
    out = {}
    for name in STATE_DBS:
        out[name] = sum(
            (state / f"{name}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if (state / f"{name}{suffix}").exists()
        )
    return out


def proc_status(pid: int) -> tuple[int, int]:
    """(RSS in kB, open file descriptors) of a live process."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def scrape(port: int) -> dict[str, float]:
    """Exposition lines as {'name{labels}': value} (comments skipped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def total(metrics: dict[str, float], name: str, *labels: str) -> float:
    return sum(
        v
        for k, v in metrics.items()
        if k.split("{")[0] == name and all(label in k for label in labels)
    )


# ------------------------------------------------------------------ the run


class Soak:
    def __init__(self, plan: Plan, workdir: Path, echo=print) -> None:
        self.plan, self.workdir, self.echo = plan, Path(workdir), echo
        self.result = Result(plan)
        self.inbox = self.workdir / "inbox"
        self.state = self.workdir / "state"
        self.cache = self.workdir / "cache"
        self.port = free_port()
        self.day = 0
        self.renamed = 0
        self._metrics: dict[str, float] = {}
        self._stop = threading.Event()

    # -------------------------------------------------------------- setup

    def simulation(self) -> Simulation:
        """One continuous simulation; bright bursts injected inside pointings, per day."""
        p = self.plan
        anomalies = [
            f"{name}@{(day + (i + 1) / (len(p.anomalies_per_day) + 1)) * p.day_hours * 3600:.0f}"
            for day in range(p.days)
            for i, name in enumerate(p.anomalies_per_day)
        ]
        anomalies = [a for a in anomalies if float(a.split("@")[1]) < p.hours * 3600]
        plain = Simulation(p.hours, p.seed, grb_rate_per_day=0.0)
        inject = []
        for day in range(p.days):
            for k in range(p.bright_per_day):
                at = (day + (k + 0.37) / p.bright_per_day) * p.day_hours * 3600
                while at < p.hours * 3600 - 120:  # the next moment inside a pointing
                    where = pointing_at(plain.pointings, plain.start + at)
                    if where is not None and where.tstop - (plain.start + at) > 60:
                        inject.append({"at": at, "fluence": 2e-5, "short": k % 2 == 0})
                        break
                    at += 300.0
        return Simulation(
            p.hours,
            p.seed,
            grb_rate_per_day=p.grb_rate_per_day,
            anomalies=anomalies,
            inject=inject,
        )

    def config(self) -> Path:
        path = self.workdir / "nrt.toml"
        path.write_text(
            f"""
[paths]
inbox = "{self.inbox}"
state = "{self.state}"
cache = "{self.cache}"
[inbox]
rescan = "10s"
[mqtt]
url = "{self.broker.url}"
client_id = "soak"
[alerts]
tense = "test"
[quicklook]
grace = "{self.plan.grace}"
products = "off"
[cache]
memory_bytes = "{self.plan.memory_bytes}"
max_bytes = "{self.plan.cache_max_bytes}"
gc_interval = "{self.plan.gc_interval}"
[metrics]
listen = "127.0.0.1:{self.port}"
"""
        )
        return path

    def start_subscriber(self) -> subprocess.Popen:
        return subprocess.Popen(
            [
                require_binary("mosquitto_sub"),
                *("-h", "127.0.0.1", "-p", str(self.broker.port)),
                *("-i", "soak-subscriber", "-c", "-q", "1", "-v", "-t", "nrt/alerts/+"),
            ],
            stdout=(self.workdir / "received.txt").open("a"),
            stderr=subprocess.STDOUT,
        )

    # -------------------------------------------------------------- watching

    def _sample(self, pid: int) -> None:
        while not self._stop.is_set():
            try:
                rss, fds = proc_status(pid)
                self._metrics = scrape(self.port)
            except (OSError, ValueError):
                if self._stop.wait(0.5):
                    return
                continue
            m = self._metrics
            self.result.samples.append(
                Sample(
                    wall=time.monotonic(),
                    day=self.day,
                    rss_kb=rss,
                    fds=fds,
                    sqlite=sqlite_bytes(self.state),
                    cache_bytes=dir_bytes(self.cache),
                    backlog=self.renamed - int(self.accepted()),
                    outbox_pending=total(m, "nrt_outbox_pending"),
                    pointings_waiting=total(m, "nrt_pointings", 'state="open"')
                    + total(m, "nrt_pointings", 'state="covered"')
                    + total(m, "nrt_pointings", 'state="grace"'),
                )
            )
            self._stop.wait(self.plan.sample_every)

    def accepted(self) -> float:
        """Files the daemon is done with: accepted, duplicates (same content) or quarantined."""
        return total(self._metrics, "nrt_telemetry_files_total")

    def _wait_taken(self, upto: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._metrics = scrape(self.port)
            except OSError:  # the metrics server is not up yet
                self._metrics = {}
            else:
                if self.accepted() >= upto:
                    return
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.returncode}); see daemon.log")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stalled: the daemon took {self.accepted():.0f} of {upto} files "
                    f"and nothing more for {timeout:.0f} s"
                )
            time.sleep(0.1)

    # -------------------------------------------------------------- feeding

    def run(self) -> Result:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.inbox.mkdir(exist_ok=True)
        sim = self.simulation()
        truth = sim.truth()
        result = self.result
        result.bursts = [b for b in truth["grbs"] if above_threshold(b)]
        result.anomalies = truth["anomalies"]
        self.broker = Mosquitto(self.workdir / "broker").start()
        self.sub = self.start_subscriber()
        env = {**os.environ}
        env.pop("NRT_CACHE_DIR", None)
        env.pop("NRT_STATE_DIR", None)
        daemon_log = (self.workdir / "daemon.log").open("w")
        started = time.monotonic()
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "nrt.cli", "run", "--config", str(self.config())],
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        sampler = threading.Thread(target=self._sample, args=(self.daemon.pid,), daemon=True)
        try:
            self._wait_taken(0, timeout=60)
            self.t0 = time.monotonic()
            sampler.start()
            self._feed(sim)
            self._wait_taken(self.renamed)
            result.feed_seconds = time.monotonic() - self.t0
            self._settle(result)
            self._stop.set()
            sampler.join()
            self.daemon.send_signal(signal.SIGTERM)
            result.exit_status = self.daemon.wait(timeout=120)
        finally:
            self._stop.set()
            if self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()
            result.wall = time.monotonic() - started
            time.sleep(1.0)
            self.sub.terminate()
            self.sub.wait()
            self.broker.stop()
        result.outbox_pending_after = self._pending()
        result.alerted = self._alerted(result.bursts)
        result.alerts_received = len(self._received())
        result.gc_evictions = sum(
            int(line.split("evicted ")[1].split()[0])
            for line in (self.workdir / "daemon.log").read_text(errors="replace").splitlines()
            if "cache gc: evicted" in line
        )
        return result

    def _feed(self, sim: Simulation) -> None:
        plan, result = self.plan, self.result
        seq: dict[tuple[str, str], int] = defaultdict(int)
        written: deque[tuple[float, Path]] = deque()  # (data clock when written, file)
        clock, last = 0.0, sim.start  # data seconds fed, gaps counted as at most MAX_GAP
        restarted = False
        span = plan.day_hours * 3600
        for kind, pointing, c0, c1, columns in sim.chunks():
            day = int((c0 - sim.start) // span)
            if day > self.day:  # a day is done
                self._wait_taken(self.renamed)
                self.echo(
                    f"day {self.day + 1} done: {self.renamed} files, "
                    f"{time.monotonic() - self.t0:.0f} s"
                )
                self.day, restarted = day, False
            if plan.broker_restarts and not restarted and c0 - sim.start >= (day + 0.5) * span:
                self.broker.stop()
                time.sleep(1.0)
                self.broker.start()
                result.broker_restarts += 1
                if self.sub.poll() is not None:  # mosquitto_sub gave up: its session waits
                    self.sub = self.start_subscriber()
                restarted = True
            seq[(kind, pointing.id)] += 1
            name = chunk_filename(kind, pointing.id, seq[(kind, pointing.id)])
            clock += min(max(0.0, c1 - last), MAX_GAP)
            last = max(last, c1)
            self._delete_taken(written, clock - plan.keep_files_for)
            path = write_chunk(self.inbox / name, kind, pointing.id, columns, c0, c1, fsync=False)
            written.append((clock, path))
            self.renamed += 1
            result.chunks += 1
            result.data_hours = (c1 - sim.start) / 3600
            if self.renamed - self.accepted() > plan.window:
                self._wait_taken(self.renamed - plan.window // 2)
        result.files_tried = self.renamed

    def _delete_taken(self, written: deque[tuple[float, Path]], before: float) -> None:
        """Delete the files written before data clock ``before``, once the daemon took them.

        The quick-look reads a pointing's files again when it is complete, so a file
        stays for ``keep_files_for`` seconds of data (a perigee gap counts as
        ``MAX_GAP``: the pointing before it is completed after it). Files are deleted
        in batches, each after the daemon has taken every file renamed so far: a file
        deleted before it is taken never reaches the daemon (the soak once did that at
        the gap, and the daemon, short of files, looked stalled).
        """
        if len(written) < DELETE_BATCH or written[DELETE_BATCH - 1][0] >= before:
            return  # (``written`` is in clock order)
        self._wait_taken(self.renamed)
        while written and written[0][0] < before:
            written.popleft()[1].unlink(missing_ok=True)

    t0 = time.monotonic()

    def _settle(self, result: Result, timeout: float = 180.0) -> None:
        """Until every burst above threshold is at the subscriber and the daemon is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = scrape(self.port)
            idle = total(m, "nrt_outbox_pending") == 0 and not total(
                m, "nrt_pointings", 'state="covered"'
            )
            if idle and len(self._alerted(result.bursts)) == len(result.bursts):
                return
            time.sleep(1.0)

    def _received(self) -> dict[tuple[str, int], dict]:
        alerts = {}
        path = self.workdir / "received.txt"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            topic, _, payload = line.partition(" ")
            if topic.startswith("nrt/alerts/"):
                with_id = json.loads(payload)
                alerts[(with_id["id"], with_id["record_number"])] = with_id
        return alerts

    def _alerted(self, bursts: list[dict]) -> list[dict]:
        """Bursts with an alert whose trigger time is within the burst (onset - 5 s to T90 end)."""
        received = self._received().values()
        times = [(Time(a["trigger_time"]).tt.mjd - 51544.0) * DAY for a in received]
        return [
            b
            for b in bursts
            if any(b["onset"] - 5.0 <= t <= b["t90_start"] + b["t90"] + 5.0 for t in times)
        ]

    def _pending(self) -> int:
        return len(pending_alerts_cli(self.state / "alerts-outbox.sqlite"))


# ------------------------------------------------------------------ judging


@dataclass
class Check:
    what: str
    first: float  # the reference day's maximum
    last: float  # the last day's maximum
    limit: float | None  # None: reported, not judged
    unit: str
    rule: str

    @property
    def ok(self) -> bool:
        return self.limit is None or self.last <= self.limit


def size_bytes(text: str) -> float:
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def growth_checks(
    result: Result,
    reference_day: int,
    tolerance: float = 0.25,
    skip: tuple[str, ...] = (),
    rss_tolerance: float | None = None,
) -> list[Check]:
    """Each series' maximum over the last day against a limit.

    Memory, descriptors, the cache index and the ingest log: within ``tolerance`` of
    the reference day's maximum (a day after the ingest log's 2-day window filled, in
    the full soak). The cache directory: within ``tolerance`` of ``cache.max_bytes``
    (GC runs every ``gc_interval``, so it may overshoot by what arrives in between).
    The outbox keeps every alert (it is the record of what was sent): reported only.
    """
    by_day: dict[int, list[Sample]] = defaultdict(list)
    for s in result.samples:
        by_day[s.day].append(s)
    last = max(by_day)
    ref = min(reference_day, last)
    budget = size_bytes(result.plan.cache_max_bytes) / 2**20
    grow = f"<= {1 + tolerance:g} x day {ref + 1}"
    rss_tol = tolerance if rss_tolerance is None else rss_tolerance
    wal = 4.0  # MiB: SQLite checkpoints its WAL at 1000 pages, and the file keeps its size
    series = [
        ("daemon RSS", lambda s: s.rss_kb / 1024, "MiB", f"<= {1 + rss_tol:g} x day {ref + 1}"),
        ("open file descriptors", lambda s: s.fds, "", f"{grow} (+4)"),
        (
            "cache directory",
            lambda s: s.cache_bytes / 2**20,
            "MiB",
            f"<= {1 + tolerance:g} x max_bytes + 1 MiB",
        ),
        (
            "SQLite index.db (+WAL)",
            lambda s: s.sqlite.get("index.db", 0) / 2**20,
            "MiB",
            f"{grow} + 4 MiB WAL",
        ),
        (
            "SQLite ingest.sqlite (+WAL)",
            lambda s: s.sqlite.get("ingest.sqlite", 0) / 2**20,
            "MiB",
            f"{grow} + 4 MiB WAL",
        ),
        (
            "SQLite alerts-outbox.sqlite (+WAL)",
            lambda s: s.sqlite.get("alerts-outbox.sqlite", 0) / 2**20,
            "MiB",
            "reported: one row per alert, kept",
        ),
    ]
    checks = []
    for what, value, unit, rule in series:
        if what in skip:
            continue
        a = max(value(s) for s in by_day[ref])
        b = max(value(s) for s in by_day[last])
        if what == "cache directory":
            limit = budget * (1 + tolerance) + 1  # what arrives between two GC runs
        elif what == "daemon RSS":
            limit = a * (1 + rss_tol)
        elif what.startswith("SQLite") and not what.startswith("SQLite alerts"):
            limit = a * (1 + tolerance) + wal
        elif what == "open file descriptors":
            limit = a * (1 + tolerance) + 4  # a broker reconnect, a GC scan
        elif "outbox" in what:
            limit = None
        else:
            limit = a * (1 + tolerance)
        checks.append(Check(what, a, b, limit, unit, rule))
    return checks


def table(result: Result, checks: list[Check], reference_day: int) -> str:
    r = result
    fed = r.feed_seconds or r.wall
    x = r.data_hours * 3600 / fed if fed else 0
    lost = len(r.lost)
    rows = [
        "| | |",
        "|---|---|",
        f"| load held | {r.chunks} chunks, {r.data_hours:.1f} h of data taken in {fed / 60:.1f} min "
        f"wall ({x:.0f}x real time), live path: `nrt run` + inbox + mosquitto + subscriber |",
        f"| faults survived | {r.broker_restarts} broker restarts (one per simulated day); "
        f"daemon exit status at SIGTERM: {r.exit_status} |",
        f"| inputs tried | {r.files_tried} files; {len(r.bursts)} bursts above threshold "
        f"(>= {THRESHOLD_SIGMA:.0f} sigma expected); {len(r.anomalies)} anomalies "
        f"({', '.join(sorted({a['kind'] for a in r.anomalies}))}) |",
        f"| alerts lost | **{lost}** ({len(r.alerted)}/{len(r.bursts)} alerted; "
        f"{r.alerts_received} alert messages received; outbox pending after stop: "
        f"{r.outbox_pending_after}) |",
        f"| cache GC | max_bytes {r.plan.cache_max_bytes}, {r.gc_evictions} results evicted |",
    ]
    rows += [""]
    rows += [
        f"| growth (max per day) | day {reference_day + 1} | last day | limit | bounded |",
        "|---|---|---|---|---|",
    ]
    for c in checks:
        limit = f"{c.limit:.1f} {c.unit} ({c.rule})" if c.limit is not None else c.rule
        verdict = "yes" if c.limit is not None and c.ok else ("-" if c.limit is None else "**NO**")
        rows.append(
            f"| {c.what} | {c.first:.1f} {c.unit} | {c.last:.1f} {c.unit} | {limit} | {verdict} |"
        )
    return "\n".join(rows)


def save(result: Result, path: Path) -> None:
    """Everything measured, so the table can be rendered again (``--render``)."""
    data = dict(result.__dict__, plan=result.plan.__dict__)
    data["samples"] = [s.__dict__ for s in result.samples]
    path.write_text(json.dumps(data, default=list))


def load(path: Path) -> Result:
    data = json.loads(path.read_text())
    data["plan"] = Plan(
        **{**data["plan"], "anomalies_per_day": tuple(data["plan"]["anomalies_per_day"])}
    )
    data["samples"] = [Sample(**s) for s in data["samples"]]
    return Result(**data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--day-hours", type=float, default=24.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/nrt-soak"))
    ap.add_argument("--reference-day", type=int, default=1, help="0-based day to compare with")
    ap.add_argument("--render", action="store_true", help="Print the table of the last run again.")
    args = ap.parse_args(argv)
    # Stopped by SIGTERM (a background job ignores SIGINT): still stop the daemon and broker.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.render:
        result = load(args.workdir / "result.json")
    else:
        import shutil

        shutil.rmtree(args.workdir, ignore_errors=True)
        plan = Plan(hours=args.days * args.day_hours, day_hours=args.day_hours)
        soak = Soak(plan, args.workdir, echo=lambda s: print(s, flush=True))
        try:
            result = soak.run()
        finally:  # a failed run's samples are evidence too
            save(soak.result, args.workdir / "result.json")
    checks = growth_checks(result, args.reference_day)
    print(table(result, checks, args.reference_day))
    ok = not result.lost and result.exit_status == 0 and all(c.ok for c in checks)
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
