"""Storing an element's outputs without pickle: .npy, FITS and JSON.

Outputs become a JSON tree (``manifest["outputs"]``) whose leaves are either
plain JSON values or references to payload files:

- numpy arrays: ``{"$npy": file}`` (``.npy``, memory-mapped on read);
- astropy Quantity: ``{"$quantity": file, "unit": "keV"}``;
- astropy Table / QTable: ``{"$table": file, "class": "QTable"}`` (FITS);
- numpy scalars: ``{"$scalar": dtype, "value": ...}``;
- non-finite floats: ``{"$float": "nan"|"inf"|"-inf"}``;
- dicts with a key starting with ``$``: ``{"$dict": [[key, value], ...]}``.

Tuples are stored as lists. Every payload's sha256 and size go into the
manifest's ``files`` so corruption is detected on read.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

ALLOWED = (
    "numpy arrays and scalars, astropy Table/QTable and Quantity, "
    "str/int/float/bool/None, and lists and dicts (with str keys) of those"
)


class ProductError(TypeError):
    """An output cannot be stored (it would need pickle)."""


class CorruptProduct(OSError):
    """A payload file does not match the checksum in its manifest."""


class _Writer:
    """Encodes an outputs tree, writing payload files into one directory."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self.files: dict[str, dict[str, Any]] = {}

    def _name(self, path: str, suffix: str) -> str:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in path)[:80] or "out"
        name, n = f"{base}{suffix}", 1
        while name in self.files:
            name, n = f"{base}-{n}{suffix}", n + 1
        return name

    def _write(self, name: str, *parts: bytes | memoryview) -> None:
        """Write `parts` to one file, fsynced, hashing as it goes (no extra copy)."""
        path = self.directory / name
        digest, size = hashlib.sha256(), 0
        with open(path, "wb") as f:
            for part in parts:
                digest.update(part)
                f.write(part)
                size += memoryview(part).nbytes
            f.flush()
            os.fsync(f.fileno())
        self.files[name] = {"sha256": digest.hexdigest(), "size": size}

    def _write_array(self, name: str, arr: np.ndarray, path: str) -> None:
        """Write an .npy file: the standard header, then the array's memory as it is."""
        if arr.dtype.hasobject:
            raise ProductError(
                f"{self.owner}.{path}: numpy array of dtype object cannot be stored without "
                f"pickle; convert it to a numeric/string dtype or a Table. Allowed: {ALLOWED}"
            )
        arr = np.require(arr, requirements="C")
        header = io.BytesIO()
        np.lib.format.write_array_header_2_0(header, np.lib.format.header_data_from_array_1_0(arr))
        self._write(name, header.getvalue(), memoryview(arr.reshape(-1).view(np.uint8)))

    def encode(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, bool | str | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else {"$float": repr(value)}
        table = _astropy_table_token(self, value, path)
        if table is not None:
            return table
        quantity = _quantity_token(self, value, path)
        if quantity is not None:
            return quantity
        if isinstance(value, np.ndarray):
            name = self._name(path, ".npy")
            self._write_array(name, value, path)
            return {"$npy": name}
        if isinstance(value, np.generic):
            if value.dtype.hasobject:
                raise ProductError(f"{self.owner}.{path}: object scalar; allowed: {ALLOWED}")
            return {"$scalar": value.dtype.str, "value": self.encode(value.item(), path)}
        if isinstance(value, list | tuple):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ProductError(
                    f"{self.owner}.{path}: dict keys must be str; allowed: {ALLOWED}"
                )
            items = {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}
            if any(k.startswith("$") for k in items):
                return {"$dict": [[k, v] for k, v in items.items()]}
            return items
        raise ProductError(
            f"{self.owner}.{path} is a {type(value).__module__}.{type(value).__qualname__}, "
            f"which cannot be stored without pickle. Allowed: {ALLOWED}. "
            f"Convert it in main() or make it private (self._{path.split('.')[0]})."
        )


def _astropy_table_token(writer: _Writer, value: Any, path: str) -> dict | None:
    import sys

    table_mod = sys.modules.get("astropy.table")
    if table_mod is None or not isinstance(value, table_mod.Table):
        return None
    buf = io.BytesIO()
    try:
        value.write(buf, format="fits")
    except Exception as exc:  # astropy raises several types for unsupported columns
        raise ProductError(
            f"{writer.owner}.{path}: this Table cannot be written as FITS ({exc}); "
            "keep to numeric, string, boolean and Quantity columns"
        ) from None
    name = writer._name(path, ".fits")
    writer._write(name, buf.getvalue())
    return {"$table": name, "class": type(value).__name__}


def _quantity_token(writer: _Writer, value: Any, path: str) -> dict | None:
    import sys

    units = sys.modules.get("astropy.units")
    if units is None or not isinstance(value, units.Quantity):
        return None
    name = writer._name(path, ".npy")
    writer._write_array(name, np.asarray(value.value), path)
    return {"$quantity": name, "unit": value.unit.to_string()}


def write_outputs(directory: Path, outputs: dict[str, Any], owner: str) -> tuple[dict, dict]:
    """Write payload files for `outputs` into `directory`; return (tree, files)."""
    writer = _Writer(directory, owner)
    tree = {name: writer.encode(value, name) for name, value in outputs.items()}
    return tree, writer.files


# ------------------------------------------------------------------ reading


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify_files(directory: Path, files: dict[str, dict[str, Any]]) -> None:
    """Raise CorruptProduct naming the first payload whose size or sha256 differs."""
    for name, meta in files.items():
        path = directory / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise CorruptProduct(f"{path}: payload missing") from None
        if size != meta["size"]:
            raise CorruptProduct(f"{path}: size {size} != {meta['size']} in manifest")
        actual = file_sha256(path)
        if actual != meta["sha256"]:
            raise CorruptProduct(
                f"{path}: sha256 {actual[:12]} != {meta['sha256'][:12]} in manifest"
            )


def read_outputs(directory: Path, tree: dict[str, Any], mmap: bool = True) -> dict[str, Any]:
    """Decode an outputs tree written by ``write_outputs``; arrays are memory-mapped."""

    def decode(node: Any) -> Any:
        if isinstance(node, list):
            return [decode(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$npy" in node:
            return np.load(
                directory / node["$npy"], mmap_mode="r" if mmap else None, allow_pickle=False
            )
        if "$quantity" in node:
            import astropy.units as u

            value = np.load(directory / node["$quantity"], allow_pickle=False)
            return u.Quantity(value[()] if value.ndim == 0 else value, node["unit"])
        if "$table" in node:
            from astropy.table import QTable, Table

            cls = QTable if node.get("class") == "QTable" else Table
            return cls.read(directory / node["$table"], format="fits", unit_parse_strict="silent")
        if "$scalar" in node:
            return np.dtype(node["$scalar"]).type(decode(node["value"]))
        if "$float" in node:
            return float(node["$float"])
        if "$dict" in node:
            return {k: decode(v) for k, v in node["$dict"]}
        return {k: decode(v) for k, v in node.items()}

    return {name: decode(node) for name, node in tree.items()}


def dumps_manifest(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False).encode()
