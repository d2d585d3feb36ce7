"""Outputs are stored without pickle and come back equal, with their types."""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.table import QTable, Table

import nrt
from nrt import products
from nrt.cache import Cache


class Rich(nrt.Element):
    cached = True

    def main(self):
        self.array = np.arange(12, dtype=np.float32).reshape(3, 4)
        self.table = Table({"energy": [1.0, 2.0], "name": ["a", "b"]})
        self.qtable = QTable({"flux": [1.0, 2.0] * u.ph / u.s})
        self.quantity = 59.3 * u.keV
        self.qarray = np.array([1.0, 2.0]) * u.s
        self.scalar = np.int16(7)
        self.plain = {"n": 3, "x": 0.25, "s": "text", "none": None, "ok": True}
        self.nonfinite = [math.nan, math.inf, -math.inf]
        self.nested = {"$weird": [np.arange(2), (1, 2)], "lines": [{"e": 511.0}]}


def restored(element_cls):
    element_cls().get()
    fresh = Cache.open()  # a new chain: no memory tier hits, must read the disk
    return element_cls().get(cache=fresh)


def test_roundtrip_of_every_allowed_type():
    r = restored(Rich)
    assert isinstance(r.array, np.ndarray) and r.array.dtype == np.float32
    np.testing.assert_array_equal(r.array, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert isinstance(r.array, np.memmap), "arrays are memory-mapped on read"
    assert list(r.table["name"]) == ["a", "b"] and type(r.table) is Table
    assert type(r.qtable) is QTable and r.qtable["flux"].unit == u.ph / u.s
    assert r.quantity == 59.3 * u.keV and r.quantity.isscalar
    assert np.all(r.qarray == [1.0, 2.0] * u.s)
    assert r.scalar == 7 and isinstance(r.scalar, np.int16)
    assert r.plain == {"n": 3, "x": 0.25, "s": "text", "none": None, "ok": True}
    assert math.isnan(r.nonfinite[0]) and r.nonfinite[1:] == [math.inf, -math.inf]
    assert list(r.nested) == ["$weird", "lines"]
    np.testing.assert_array_equal(r.nested["$weird"][0], [0, 1])
    assert r.nested["$weird"][1] == [1, 2]  # tuples come back as lists (documented)


def test_manifest_lists_every_payload_with_its_checksum(isolated_nrt_dirs):
    element = Rich()
    element.get()
    manifest_dir = isolated_nrt_dirs["cache"] / element.signature[:2] / element.signature
    import json

    manifest = json.loads((manifest_dir / "manifest.json").read_text())
    for name, meta in manifest["files"].items():
        assert products.file_sha256(manifest_dir / name) == meta["sha256"]
    assert not [p for p in manifest_dir.iterdir() if p.suffix == ".pkl"]


class Unstorable(nrt.Element):
    cached = True

    def main(self):
        self.good = 1
        self.handle = open  # a builtin function: cannot be stored


class ObjectArray(nrt.Element):
    cached = True

    def main(self):
        self.values = np.array([{"a": 1}], dtype=object)


def test_unstorable_output_names_element_attribute_and_type(isolated_nrt_dirs):
    with pytest.raises(products.ProductError, match=r"Unstorable\.handle is a builtins"):
        Unstorable().get()
    with pytest.raises(
        products.ProductError, match=r"ObjectArray\.values: numpy array of dtype object"
    ):
        ObjectArray().get()
    # Nothing half-written was left behind.
    assert Cache.open().verify()["checked"] == 0
    assert not list((isolated_nrt_dirs["cache"] / ".tmp").iterdir())
