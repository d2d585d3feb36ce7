"""The small interface every cache tier shares, and the unit it moves: an Entry."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class Entry:
    """One cached result: its manifest, and either a directory of payload files or decoded outputs.

    A negative result (an ``AnalysisException``) has ``manifest["status"] == "failed"``
    and no payload.
    """

    manifest: dict[str, Any]
    directory: Path | None = None
    outputs: dict[str, Any] | None = None

    @property
    def signature(self) -> str:
        return self.manifest["signature"]

    @property
    def failed(self) -> bool:
        return self.manifest.get("status") == "failed"

    @property
    def expired(self) -> bool:
        expires = self.manifest.get("expires")
        return expires is not None and expires < time.time()

    @property
    def nbytes(self) -> int:
        return sum(f["size"] for f in self.manifest.get("files", {}).values())


@dataclass
class TransferStats:
    """Latency and bandwidth of a tier, as moving averages of measured transfers."""

    latency_s: float = 1e-4
    bandwidth_bps: float = 1e9
    samples: int = 0
    alpha: float = field(default=0.2, repr=False)
    latency_samples: int = field(default=0, repr=False)
    bandwidth_samples: int = field(default=0, repr=False)

    def record(self, seconds: float, nbytes: int) -> None:
        """Fold one transfer in: small ones teach latency, large ones bandwidth.

        The first transfers are averaged plainly (weight 1/n), so a prior guess that
        is orders of magnitude off is forgotten at once; then a moving average.
        """
        self.samples += 1
        if nbytes < 64 * 1024:
            self.latency_samples += 1
            weight = max(self.alpha, 1.0 / self.latency_samples)
            self.latency_s += weight * (seconds - self.latency_s)
        else:
            self.bandwidth_samples += 1
            weight = max(self.alpha, 1.0 / self.bandwidth_samples)
            rate = nbytes / max(seconds - self.latency_s, 1e-6)
            self.bandwidth_bps += weight * (rate - self.bandwidth_bps)

    def cost(self, nbytes: int) -> float:
        return self.latency_s + nbytes / self.bandwidth_bps


@runtime_checkable
class Tier(Protocol):
    """What the cache chain needs of a tier (memory, local directory, iRODS, ...)."""

    name: str
    read_only: bool

    def has(self, signature: str) -> bool: ...

    def get(self, signature: str) -> Entry | None:
        """The entry, verified; raises ``CorruptProduct`` if it is damaged."""

    def put(self, entry: Entry) -> None: ...

    def delete(self, signature: str) -> bool: ...

    def cost(self, nbytes: int) -> float:
        """Estimated seconds to fetch `nbytes` from this tier."""
