"""The nightly-sized fuzz run (`make fuzz`): every parser of outside data, >= 1e5 inputs.

Prints, per parser, the inputs tried, how many were accepted and rejected, the most
frequent rejection reasons (numbers and quoted values folded), and the crashes and
hangs, which must be 0. Each failing input is saved under ``--save`` (default
``fuzz-failures/``) as ``<parser>-<n>.bin`` to reproduce it:
``Target.run(Path(...).read_bytes())``. Exit status 1 if anything failed.

    python -m tests.fuzz.run [--inputs 106000] [--only read_chunk ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

from tests.fuzz.targets import Target, all_targets

#: Share of the inputs per parser (the MQTT path writes SQLite rows and files: fewer).
SHARES = {
    "read_chunk": 20,
    "read_chunk(name)": 8,
    "fitsio": 20,
    "read_lightcurve": 20,
    "alerts.parse_message": 15,
    "config.load": 10,
    "config.parse": 10,
    "MqttSource.handle": 3,
}


def fuzz(target: Target, n: int, save: Path, rng_seed: int) -> tuple[Counter, Counter, float]:
    """Run `n` generated inputs through `target`: (outcomes, reasons, seconds)."""
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    start = time.perf_counter()

    @seed(rng_seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def one(data: bytes) -> None:
        outcome = target.run(data)
        outcomes[outcome.status] += 1
        if outcome.status == "rejected":
            reasons[outcome.reason] += 1
        elif outcome.failed:
            reasons[f"{outcome.status.upper()}: {outcome.reason[:100]}"] += 1
            save.mkdir(parents=True, exist_ok=True)
            slug = target.name.replace("(", "-").replace(")", "")
            (save / f"{slug}-{outcomes[outcome.status]}.bin").write_bytes(data)

    one()
    return outcomes, reasons, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=106_000, help="total inputs, all parsers")
    parser.add_argument("--only", nargs="*", help="parser names to run (default: all)")
    parser.add_argument("--save", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=6, help="rejection reasons shown per parser")
    args = parser.parse_args(argv)
    logging.getLogger("nrt").setLevel(logging.ERROR)  # quarantine warnings: one per input

    total_share = sum(SHARES.values())
    rows, failed = [], 0
    for target in all_targets():
        if args.only and target.name not in args.only:
            continue
        n = max(1, args.inputs * SHARES[target.name] // total_share)
        outcomes, reasons, seconds = fuzz(target, n, args.save, args.seed)
        bad = outcomes["crash"] + outcomes["hang"]
        failed += bad
        tried = sum(outcomes.values())
        rows.append((target.name, tried, outcomes, bad, seconds))
        print(
            f"\n== {target.name}: {tried} inputs in {seconds:.0f} s "
            f"({1e3 * seconds / max(tried, 1):.1f} ms each): accepted {outcomes['accepted']}, "
            f"rejected {outcomes['rejected']}, crashes {outcomes['crash']}, "
            f"hangs {outcomes['hang']}",
            flush=True,
        )
        print(f"   {len(reasons)} distinct reasons; most frequent:")
        for reason, count in reasons.most_common(args.top):
            print(f"   {count:7d}  {reason}")
        for reason, count in reasons.items():
            if reason.startswith(("CRASH", "HANG")):
                print(f"   {count:7d}  {reason}")

    print("\n| parser | inputs | accepted | rejected | crashes | hangs | s |")
    print("|---|---|---|---|---|---|---|")
    for name, tried, outcomes, _bad, seconds in rows:
        print(
            f"| {name} | {tried} | {outcomes['accepted']} | {outcomes['rejected']} | "
            f"{outcomes['crash']} | {outcomes['hang']} | {seconds:.0f} |"
        )
    total = sum(r[1] for r in rows)
    print(f"| **all** | {total} | | | {failed} crashes + hangs | | |")
    if failed:
        print(f"failing inputs saved under {args.save}/", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
