"""End-to-end benchmark of the daemon (not a pass/fail test). Prints three tables.

1. Alert latency: from the rename of a chunk into the inbox to the receipt of the
   alert it caused by an MQTT subscriber, p50/p99 over >= 100 bursts, while the
   quick-look runs in the background; beside it the floor, a bare paho publish
   to receive on the same broker.
2. Replay throughput for default simulated rates, as a multiple of real time.
3. Memory of a 24 h replay (aim: flat), sampled from /proc every 0.5 s against the
   data it has taken: the median RSS within each hour of data before a mark (the
   level) and the peak so far (which also holds the transient of two pointings'
   quick-looks running at once).

Run: ``python tests/benchmarks/bench_e2e.py [--hours-latency 4] [--long-hours 24]``.
Needs ``mosquitto`` on the PATH (a private broker is started on a free port).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nrt.daemon.replay import ordered_files  # noqa: E402
from nrt.telemetry.simulator import simulate  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.services import free_port  # noqa: E402


def percentiles(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return statistics.median(values), p99


def subscriber(
    port: int, topic: str, sink: dict[str, float], stop: threading.Event
) -> threading.Thread:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c, _u, msg):
        now = time.time()
        try:
            sink.setdefault(json.loads(msg.payload)["id"], now)
        except (ValueError, KeyError):
            sink.setdefault(msg.payload.decode(errors="replace"), now)

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)

    def loop():
        while not stop.is_set():
            client.loop(timeout=0.05)
        client.disconnect()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(0.3)
    return thread


def floor_latency(port: int, n: int = 1000) -> list[float]:
    """Bare paho-mqtt QoS 1 publish -> receive on the same broker (the floor)."""
    import paho.mqtt.client as mqtt

    got: dict[str, float] = {}
    stop = threading.Event()
    thread = subscriber(port, "bench/floor", got, stop)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    sent = {}
    for i in range(n):
        key = json.dumps({"id": f"m{i}"})
        sent[f"m{i}"] = time.time()
        pub.publish("bench/floor", key, qos=1).wait_for_publish()
        time.sleep(0.002)
    time.sleep(1.0)
    stop.set()
    thread.join()
    pub.loop_stop()
    return [got[k] - t for k, t in sent.items() if k in got]


def alert_latency(
    hours: float, speed: float, broker: Mosquitto, work: Path, extra: str = ""
) -> dict:
    """Rename -> alert received, through ``nrt run``; `extra`: more of its TOML."""
    sim = work / "sim"
    truth = simulate(sim, hours, seed=7, grb_rate_per_day=3000)
    files = ordered_files(sim)
    inbox, metrics_port = work / "inbox", free_port()
    inbox.mkdir()
    config = work / "nrt.toml"
    config.write_text(
        f'[paths]\ninbox = "{inbox}"\nstate = "{work / "state"}"\ncache = "{work / "cache"}"\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "bench"\n[alerts]\ntense = "test"\n'
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n{extra}'
    )
    log_path = work / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NRT_")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nrt.cli", "run", "--config", str(config)],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    got: dict[str, float] = {}
    stop = threading.Event()
    thread = subscriber(broker.port, "nrt/alerts/+", got, stop)
    time.sleep(3.0)  # let the daemon come up
    renamed: dict[str, float] = {}
    data0 = wall0 = None
    for path in files:
        tstart = _tstart(path)
        if data0 is None:
            data0, wall0 = tstart, time.monotonic()
        delay = wall0 + (tstart - data0) / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        renamed[path.name] = time.time()
        os.rename(path, inbox / path.name)
    time.sleep(5.0)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=120)
    stop.set()
    thread.join()
    caused = dict(re.findall(r"ALERT (\S+) .*\(chunk (\S+)\)", log_path.read_text()))
    latencies = [got[a] - renamed[c] for a, c in caused.items() if a in got and c in renamed]
    return {"bursts": len(truth["grbs"]), "alerts": len(caused), "latencies": latencies}


def _tstart(path: Path) -> float:
    from nrt.telemetry.formats import read_chunk

    return read_chunk(path).tstart


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _data_hours(ingest: Path) -> float:
    """Hours of data the daemon has taken so far (its ingest log, read-only)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{ingest}?mode=ro", uri=True, timeout=1) as db:
            lo, hi = db.execute("SELECT min(tstart), max(tstop) FROM chunks").fetchone()
    except sqlite3.Error:
        return 0.0
    return 0.0 if lo is None else (hi - lo) / 3600


def replay_run(hours: float, work: Path, broker: Mosquitto, extra: str = "") -> dict:
    """``nrt replay`` of `hours` of simulated data, its RSS sampled against data progress.

    Alerts go to the benchmark's own broker, as a daemon's would (never the host's)."""
    sim = work / f"sim{hours:g}"
    simulate(sim, hours, seed=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NRT_")}
    env["NRT_CACHE_DIR"] = str(work / f"cache{hours:g}")
    state = work / f"state{hours:g}"
    config = work / f"replay{hours:g}.toml"
    config.write_text(f'[mqtt]\nurl = "{broker.url}"\n{extra}')
    command = [sys.executable, "-m", "nrt.cli", "replay", str(sim), "--json"]
    command += ["--config", str(config), "--state-dir", str(state)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    samples: list[tuple[float, float]] = []  # (hours of data taken, RSS MiB)
    while proc.poll() is None:
        rss = _rss_mib(proc.pid)
        if rss is not None:
            samples.append((_data_hours(state / "ingest.sqlite"), rss))
        time.sleep(0.5)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"nrt replay failed ({proc.returncode})")
    summary = json.loads(out.strip().splitlines()[-1])
    summary["samples"] = samples
    summary["maxrss_mib"] = max(r for _, r in samples)
    return summary


def rss_by_hour(samples: list[tuple[float, float]], marks: list[float]) -> list[float]:
    """The largest RSS sampled up to each mark of hours of data."""
    return [max((r for h, r in samples if h <= mark), default=float("nan")) for mark in marks]


def rss_level(samples: list[tuple[float, float]], marks: list[float]) -> list[float]:
    """The median RSS sampled in the hour of data before each mark."""
    return [
        statistics.median([r for h, r in samples if mark - 1 < h <= mark] or [float("nan")])
        for mark in marks
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours-latency", type=float, default=4.0)
    parser.add_argument(
        "--speed", type=float, default=40.0, help="pace of the latency run (x real time)"
    )
    parser.add_argument("--long-hours", type=float, default=24.0)
    parser.add_argument(
        "--daemon-cpus", help="the daemons' [daemon] cpus: one (default), all, or a list"
    )
    args = parser.parse_args()
    extra = f'[daemon]\ncpus = "{args.daemon_cpus}"\n' if args.daemon_cpus else ""
    with tempfile.TemporaryDirectory(dir="/work" if os.path.isdir("/work") else None) as tmp:
        work = Path(tmp)
        broker = Mosquitto(workdir=work / "broker", persistence=False).start()
        try:
            floor = floor_latency(broker.port)
            e2e = alert_latency(args.hours_latency, args.speed, broker, work / "latency", extra)
            short = replay_run(1.0, work, broker, extra)
            long = replay_run(args.long_hours, work, broker, extra)
        finally:
            broker.stop()
        f50, f99 = percentiles(floor)
        print(
            f"\n1. alert latency (rename into the inbox -> MQTT subscriber), {len(e2e['latencies'])} alerts "
            f"from {e2e['bursts']} simulated bursts, telemetry paced at {args.speed:g}x real time"
        )
        print(f"   {'path':<36} {'p50 ms':>8} {'p99 ms':>8}")
        print(f"   {'bare paho publish -> receive':<36} {f50 * 1e3:8.2f} {f99 * 1e3:8.2f}")
        if e2e["latencies"]:
            e50, e99 = percentiles(e2e["latencies"])
            print(f"   {'nrt: rename -> alert received':<36} {e50 * 1e3:8.2f} {e99 * 1e3:8.2f}")
            print(f"   ratio to the floor: p50 {e50 / f50:.0f}x, p99 {e99 / f99:.0f}x")
        print("\n2. replay throughput (default simulated rates)")
        print(f"   1 h of data in {short['seconds']:.1f} s = {short['speed']:.0f}x real time")
        print(
            f"   {args.long_hours:g} h of data in {long['seconds']:.1f} s = {long['speed']:.0f}x real time"
        )
        marks = [m for m in (1, 2, 4, 8, 12, 16, 20) if m < args.long_hours] + [args.long_hours]
        peaks = rss_by_hour(long["samples"], marks)
        levels = rss_level(long["samples"], marks)
        print(f"\n3. memory of the {args.long_hours:g} h replay, MiB (sampled every 0.5 s)")
        print("   " + "".join(f"{m:>7g} h" for m in marks))
        print("   median in the hour before " + "".join(f"{r:9.0f}" for r in levels))
        print("   peak so far               " + "".join(f"{r:9.0f}" for r in peaks))
        for i, why in ((0, ""), (1, " (the first pointing's quick-look done)")):
            if i < len(marks) - 1:
                print(
                    f"   after {args.long_hours:g} h / after {marks[i]:g} h{why}: "
                    f"level {levels[-1] / levels[i]:.2f}, peak {peaks[-1] / peaks[i]:.2f}"
                )
        print(f"   (a separate 1 h replay peaked at {short['maxrss_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
