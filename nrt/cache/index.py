"""The SQLite index of cached products (sqlite-utils, WAL).

It answers ``nrt cache ls/why/gc`` and staleness questions quickly. It is an
index, not the truth: every row can be rebuilt from the manifests in the local
tier, which happens automatically when the file is missing or damaged. So a write
the disk refuses (full, or over a file-size limit) is logged and skipped rather
than failing the computation that wanted it: the result is in the cache
directory, and ``nrt cache verify`` (or the next rebuild) indexes it again.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from nrt import metrics, products

log = logging.getLogger(__name__)

PRODUCT_COLUMNS = {
    "signature": str,
    "element": str,
    "version": str,
    "pointing": str,
    "params": str,
    "inputs": str,
    "code_hash": str,
    "created": float,
    "last_access": float,
    "run_seconds": float,
    "size": int,
    "tiers": str,
    "status": str,
    "expires": float,
}


def _product_row(manifest: dict[str, Any], tiers: set[str]) -> dict[str, Any]:
    """The products row describing `manifest`, held by `tiers`."""
    now = time.time()
    return {
        "signature": manifest["signature"],
        "element": manifest.get("element"),
        "version": manifest.get("version"),
        "pointing": manifest.get("pointing"),
        "params": json.dumps(manifest.get("params_display", {}), sort_keys=True),
        "inputs": json.dumps(manifest.get("components", {}).get("inputs", {})),
        "code_hash": manifest.get("components", {}).get("code"),
        "created": manifest.get("created", now),
        "last_access": now,
        "run_seconds": manifest.get("run_seconds"),
        # Payloads plus the manifest itself: gc's byte budget is what the entry takes on disk.
        "size": sum(f["size"] for f in manifest.get("files", {}).values())
        + len(products.dumps_manifest(manifest)),
        "tiers": json.dumps(sorted(tiers)),
        "status": manifest.get("status", "ok"),
        "expires": manifest.get("expires"),
    }


#: SQLite's words for a write the storage refused (ENOSPC, EFBIG, EIO, ...).
_REFUSED_WRITES = ("database or disk is full", "disk i/o error")


def _skipped_if_refused(method):
    """An index write the disk refuses is logged and skipped (see the module docstring)."""

    @functools.wraps(method)
    def write(self: Index, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not any(words in str(exc).lower() for words in _REFUSED_WRITES):
                raise
            with self._lock:
                if self.db.conn.in_transaction:
                    self.db.conn.execute("ROLLBACK")
                self.refused += 1
                now = time.monotonic()
                if now - self._reported >= REPORT_INTERVAL:  # once a minute, not per write
                    self._reported = now
                    log.error(
                        "cache index %s cannot be written (%s; %d writes skipped so far): the "
                        "disk under the state directory is full or a file-size limit stops it; "
                        "results still go to the cache directory, and `nrt cache verify` "
                        "indexes them again",
                        self.path,
                        exc,
                        self.refused,
                    )
            return None

    return write


#: Seconds between two log lines about index writes the disk refuses.
REPORT_INTERVAL = 60.0


class Index:
    """One row per product; one row per known signature's components (for ``why``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.rebuilt = False
        #: index writes the disk refused (skipped), and when that was last logged.
        self.refused = 0
        self._reported = -REPORT_INTERVAL
        self.db = self._open()

    # ------------------------------------------------------------ opening

    def _connect(self) -> sqlite_utils.Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA busy_timeout = 30000")
        db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _open(self) -> sqlite_utils.Database:
        try:
            db = self._connect()
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            self._ensure_schema(db)
            return db
        except sqlite3.DatabaseError as exc:
            quarantined = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "cache index %s is damaged (%s); moved to %s and rebuilding from manifests",
                self.path,
                exc,
                quarantined,
            )
            for suffix in ("", "-wal", "-shm"):
                side = Path(str(self.path) + suffix)
                if side.exists():
                    side.rename(Path(str(quarantined) + suffix))
            self.rebuilt = True
            metrics.STATE_REPAIRS.labels("index", "rebuilt").inc()
            db = self._connect()
            self._ensure_schema(db)
            return db

    def _ensure_schema(self, db: sqlite_utils.Database) -> None:
        if "products" not in db.table_names():
            db["products"].create(PRODUCT_COLUMNS, pk="signature", if_not_exists=True)
            db["products"].create_index(["element"], if_not_exists=True)
            db["products"].create_index(["pointing"], if_not_exists=True)
        if "signatures" not in db.table_names():
            db["signatures"].create(
                {"signature": str, "element": str, "components": str},
                pk="signature",
                if_not_exists=True,
            )
        if "tier_stats" not in db.table_names():
            db["tier_stats"].create(
                {"tier": str, "latency_s": float, "bandwidth_bps": float, "samples": int},
                pk="tier",
                if_not_exists=True,
            )

    # ------------------------------------------------------------ writing

    @_skipped_if_refused
    def record(self, manifest: dict[str, Any], tier: str) -> None:
        """Note that `tier` holds the product described by `manifest`."""
        with self._lock:
            existing = self.get(manifest["signature"])
            tiers = set(json.loads(existing["tiers"])) if existing else set()
            tiers.add(tier)
            self.db["products"].upsert(_product_row(manifest, tiers), pk="signature")
            if "components" in manifest:
                self.remember(
                    manifest["signature"], manifest.get("element", ""), manifest["components"]
                )

    @_skipped_if_refused
    def record_many(self, items: list[tuple[dict[str, Any], list[str]]]) -> None:
        """``record`` for many (manifest, tiers) at once, in one transaction per table.

        A distributed run's client records hundreds of results a second; one
        write per result made it the bottleneck.
        """
        if not items:
            return
        with self._lock:
            sigs = [m["signature"] for m, _ in items]
            marks = ",".join("?" * len(sigs))
            known = {
                r["signature"]: set(json.loads(r["tiers"]))
                for r in self._query(
                    f"SELECT signature, tiers FROM products WHERE signature IN ({marks})", sigs
                )
            }
            rows = {}
            for manifest, tiers in items:
                merged = known.setdefault(manifest["signature"], set())
                merged.update(tiers)
                rows[manifest["signature"]] = _product_row(manifest, merged)
            self.db.conn.execute("BEGIN")
            try:
                self.db["products"].upsert_all(list(rows.values()), pk="signature")
            finally:
                if self.db.conn.in_transaction:
                    self.db.conn.execute("COMMIT")
            self.remember_many(
                (m["signature"], m.get("element", ""), m["components"])
                for m, _ in items
                if "components" in m
            )

    @_skipped_if_refused
    def remember(self, signature: str, element: str, components: dict[str, Any]) -> None:
        """Keep a signature's components so ``why`` can explain it later."""
        with self._lock:
            self.db["signatures"].upsert(
                {
                    "signature": signature,
                    "element": element,
                    "components": json.dumps(components, sort_keys=True),
                },
                pk="signature",
            )

    @_skipped_if_refused
    def remember_many(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        with self._lock, self.db.conn:
            self.db["signatures"].upsert_all(
                [
                    {"signature": s, "element": e, "components": json.dumps(c, sort_keys=True)}
                    for s, e, c in rows
                ],
                pk="signature",
            )

    @_skipped_if_refused
    def prune_signatures(self, keep: int) -> int:
        """Forget the components of all but the `keep` most recently first-seen signatures
        that no longer have a product (``why`` can then no longer explain those); the ones
        with a product are always kept. Without this the table grows with every signature
        ever computed (a daemon: ~1000 a day, ~5 kB each). Returns how many were forgotten."""
        orphans = "signature NOT IN (SELECT signature FROM products)"
        with self._lock, self.db.conn:
            cursor = self.db.execute(
                f"DELETE FROM signatures WHERE {orphans} AND rowid NOT IN "
                f"(SELECT rowid FROM signatures WHERE {orphans} ORDER BY rowid DESC LIMIT ?)",
                [keep],
            )
            return cursor.rowcount

    @_skipped_if_refused
    def forget(self, signature: str, tier: str | None = None) -> None:
        """Drop `tier` from a row (all tiers if None); delete the row when none is left."""
        with self._lock:
            row = self.get(signature)
            if row is None:
                return
            tiers = set(json.loads(row["tiers"])) - (
                {tier} if tier else set(json.loads(row["tiers"]))
            )
            if tiers:
                self.db["products"].update(signature, {"tiers": json.dumps(sorted(tiers))})
            else:
                self.db["products"].delete(signature)

    @_skipped_if_refused
    def touch(self, signature: str) -> None:
        with self._lock:
            self.db.execute(
                "UPDATE products SET last_access = ? WHERE signature = ?", [time.time(), signature]
            )

    @_skipped_if_refused
    def save_tier_stats(
        self, tier: str, latency_s: float, bandwidth_bps: float, samples: int
    ) -> None:
        with self._lock:
            self.db["tier_stats"].upsert(
                {
                    "tier": tier,
                    "latency_s": latency_s,
                    "bandwidth_bps": bandwidth_bps,
                    "samples": samples,
                },
                pk="tier",
            )

    # ------------------------------------------------------------ reading

    def _query(self, sql: str, params: list | None = None) -> list[dict[str, Any]]:
        """All reads go through here: one connection, shared by threads under the lock."""
        with self._lock:
            return list(self.db.query(sql, params or []))

    def get(self, signature: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM products WHERE signature = ?", [signature])
        return rows[0] if rows else None

    def components(self, signature: str) -> dict[str, Any] | None:
        sql = "SELECT components FROM signatures WHERE signature = ?"
        rows = self._query(sql, [signature])
        return json.loads(rows[0]["components"]) if rows else None

    def find(self, prefix: str) -> list[str]:
        """Signatures starting with `prefix` (products first, then known signatures)."""
        like = prefix.replace("%", "").replace("_", "") + "%"
        rows = self._query(
            "SELECT signature FROM products WHERE signature LIKE ? "
            "UNION SELECT signature FROM signatures WHERE signature LIKE ? LIMIT 10",
            [like, like],
        )
        return [r["signature"] for r in rows]

    def products(self, where: str = "1", params: list | None = None) -> list[dict[str, Any]]:
        return self._query(f"SELECT * FROM products WHERE {where} ORDER BY created", params)

    def tier_stats(self) -> dict[str, dict[str, Any]]:
        return {row["tier"]: row for row in self._query("SELECT * FROM tier_stats")}

    def stats(self) -> dict[str, Any]:
        row = self._query(
            "SELECT count(*) AS products, coalesce(sum(size), 0) AS bytes, "
            "coalesce(sum(run_seconds), 0) AS run_seconds, "
            "sum(status = 'failed') AS failed FROM products"
        )[0]
        by_element = self._query(
            "SELECT element, count(*) AS products, coalesce(sum(size), 0) AS bytes "
            "FROM products GROUP BY element ORDER BY element"
        )
        return {**row, "failed": row["failed"] or 0, "by_element": by_element}

    # ------------------------------------------------------------ rebuilding

    def rebuild(self, manifests: Iterable[tuple[dict[str, Any], str]]) -> int:
        """Replace all product rows with those described by (manifest, tier) pairs."""
        with self._lock:
            self.db.execute("DELETE FROM products")
            n = 0
            for manifest, tier in manifests:
                self.record(manifest, tier)
                n += 1
            return n

    def close(self) -> None:
        self.db.close()
