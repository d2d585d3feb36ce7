"""Explaining why two signatures differ: the answer to "why did this recompute?"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Difference:
    """One component that differs; `path` says where in the graph (``Analysis.input_b``)."""

    path: str
    component: str  # name, version, param, code, includes, input, unknown
    key: str | None
    a: Any
    b: Any

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        if self.component == "param":
            return f"{where}parameter {self.key}: {self.a} -> {self.b}"
        if self.component == "input":
            return f"{where}input {self.key} changed: {self.a} -> {self.b}"
        if self.component == "unknown":
            return f"{where}{self.key} not in the index (was it computed here?)"
        return f"{where}{self.component}: {self.a} -> {self.b}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def readable(token: Any) -> str:
    """Turn a canonical token (see nrt.signature.canonical) back into readable text."""
    if not isinstance(token, list) or not token:
        return repr(token)
    tag, rest = token[0], token[1:]
    if tag == "n":
        return "None"
    if tag in ("i", "f"):
        return rest[0]
    if tag == "b":
        return str(rest[0])
    if tag == "s":
        return repr(rest[0])
    if tag == "l":
        return "[" + ", ".join(readable(t) for t in rest[0]) + "]"
    if tag == "d":
        return "{" + ", ".join(f"{readable(k)}: {readable(v)}" for k, v in rest[0]) + "}"
    if tag == "q":
        return f"{readable(rest[0])} {rest[1]}"
    if tag == "a":
        return f"array({rest[0]}, shape={tuple(rest[1])}, sha256={rest[2][:12]})"
    return str(token)


def explain(
    a: str, b: str, components: Callable[[str], dict[str, Any] | None], path: str = ""
) -> list[Difference]:
    """Every difference between signatures `a` and `b`, following changed inputs upstream."""
    if a == b:
        return []
    ca, cb = components(a), components(b)
    if ca is None or cb is None:
        missing = a if ca is None else b
        return [Difference(path, "unknown", missing[:12], None, None)]
    path = path or ca["name"]
    if ca["name"] != cb["name"]:
        return [Difference(path, "name", None, ca["name"], cb["name"])]
    found: list[Difference] = []
    if ca["version"] != cb["version"]:
        found.append(Difference(path, "version", None, ca["version"], cb["version"]))
    for key in sorted(set(ca["params"]) | set(cb["params"])):
        va, vb = ca["params"].get(key), cb["params"].get(key)
        if va != vb:
            show = [readable(v) if v is not None else "(absent)" for v in (va, vb)]
            found.append(Difference(path, "param", key, *show))
    if ca["code"] != cb["code"]:
        found.append(Difference(path, "code", None, ca["code"][:12], cb["code"][:12]))
    if ca.get("includes") != cb.get("includes"):
        found.append(Difference(path, "includes", None, "hash_includes", "changed"))
    for key in sorted(set(ca["inputs"]) | set(cb["inputs"])):
        sa, sb = ca["inputs"].get(key), cb["inputs"].get(key)
        if sa == sb:
            continue
        found.append(Difference(path, "input", key, (sa or "-")[:12], (sb or "-")[:12]))
        if sa and sb:
            found.extend(explain(sa, sb, components, f"{path}.{key}"))
    return found
