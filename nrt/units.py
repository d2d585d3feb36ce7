"""Parsing human sizes and durations ('10G', '30d') in configuration and commands."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdw]?)\s*$", re.IGNORECASE)
_SECONDS = {"": 1, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_bytes(text: str | int) -> int:
    """'500M', '10G', '1024' -> bytes (powers of 1024)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; use e.g. 500M, 10G or a number of bytes")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def parse_seconds(text: str | float) -> float:
    """'30d', '12h', '90m', '250ms', '3600' (seconds) -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = _AGE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; use e.g. 30d, 12h, 90m, 250ms or seconds")
    return float(m.group(1)) * _SECONDS[m.group(2).lower()]
