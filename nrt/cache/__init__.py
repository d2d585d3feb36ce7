"""Cache tiers (memory, local directory, remote), their index, and the chain over them."""

from nrt.cache.chain import Cache, default_cache
from nrt.cache.index import Index
from nrt.cache.local import CacheWriteError, LocalTier
from nrt.cache.memory import MemoryTier
from nrt.cache.tier import Entry, Tier, TransferStats

__all__ = [
    "Cache",
    "CacheWriteError",
    "Entry",
    "Index",
    "LocalTier",
    "MemoryTier",
    "Tier",
    "TransferStats",
    "default_cache",
]
