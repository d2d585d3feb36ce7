"""Signatures change when, and only when, DESIGN.md section 3 says they do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import astropy.units as u
import numpy as np
import pytest

import nrt
from nrt import signature as sig
from tests.engine.helpers import load_module, signature_of

BASE = """
import nrt

LIMIT = 3

def helper(x):
    return x + 1

class B(nrt.Element):
    version = "v1"
    scale = 2.0
    def main(self):
        self.value = self.scale

class Analysis(nrt.Element):
    version = "v1"
    threshold = 6.0
    bands = (15.0, 50.0)
    input_b = B
    def main(self):
        # compute the thing
        self.result = self.input_b.value * self.threshold
"""


@pytest.fixture
def base(tmp_path):
    return signature_of(tmp_path, BASE)


def variant(tmp_path, old: str, new: str, **kwargs) -> str:
    assert old in BASE, old
    return signature_of(tmp_path, BASE.replace(old, new), **kwargs)


# ---------------------------------------------------------------- changes when


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("class Analysis(nrt.Element):", "class Analysis2(nrt.Element):"),  # qualified name
        ('    version = "v1"\n    threshold', '    version = "v2"\n    threshold'),  # version
        ("threshold = 6.0", "threshold = 6.5"),  # parameter value
        ("scale = 2.0", "scale = 3.0"),  # an input's signature
        ("self.input_b.value * self.threshold", "self.input_b.value / self.threshold"),  # code
    ],
    ids=["name", "version", "parameter", "input", "method-body"],
)
def test_signature_changes(tmp_path, base, old, new):
    cls = "Analysis2" if "Analysis2" in new else "Analysis"
    assert variant(tmp_path, old, new, cls=cls) != base


def test_overriding_a_parameter_or_an_input_by_keyword_changes_it(tmp_path, base):
    mod = load_module(tmp_path, BASE)
    assert mod.Analysis(threshold=7.0).signature != base
    assert mod.Analysis(input_b=mod.B(scale=5.0)).signature != base
    assert mod.Analysis(input_b=mod.B).signature == base


def test_hash_includes_tracks_helpers_and_constants(tmp_path):
    src = BASE + textwrap.dedent(
        """
        class WithHelper(nrt.Element):
            hash_includes = (helper, LIMIT)
            def main(self):
                self.x = helper(LIMIT)
        """
    )
    sig0 = signature_of(tmp_path, src, "WithHelper")
    assert signature_of(tmp_path, src.replace("return x + 1", "return x + 2"), "WithHelper") != sig0
    assert signature_of(tmp_path, src.replace("LIMIT = 3", "LIMIT = 4"), "WithHelper") != sig0
    # Without hash_includes a helper edit is invisible (which is why hash_includes exists).
    plain = src.replace("hash_includes = (helper, LIMIT)", "")
    assert signature_of(tmp_path, plain, "WithHelper") == signature_of(
        tmp_path, plain.replace("return x + 1", "return x + 2"), "WithHelper"
    )


# ---------------------------------------------------------------- does not change when


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("# compute the thing", "# a different comment"),
        (
            "def main(self):\n        # compute",
            'def main(self):\n        """Docstring."""\n        # compute',
        ),
        (
            "self.input_b.value * self.threshold",
            "(self.input_b.value\n            *   self.threshold)",
        ),
        ("class Analysis(nrt.Element):", '\n\nclass Analysis(nrt.Element):\n    """Class doc."""'),
        ("LIMIT = 3", "LIMIT = 4"),  # not in hash_includes, not used
    ],
    ids=["comment", "docstring", "formatting", "class-docstring", "unrelated-module-code"],
)
def test_signature_unchanged(tmp_path, base, old, new):
    assert variant(tmp_path, old, new) == base


def test_parameter_passed_equal_to_default(tmp_path, base):
    mod = load_module(tmp_path, BASE)
    assert mod.Analysis(threshold=6.0).signature == base
    assert mod.Analysis(threshold=6).signature == base  # 6 == 6.0
    assert mod.Analysis(threshold=np.float64(6.0)).signature == base
    assert mod.Analysis(bands=[15.0, 50.0]).signature == base  # tuple and list: one encoding
    assert mod.Analysis(bands=(15, 50)).signature == base


def test_same_signature_in_another_process_with_another_hash_seed(tmp_path, base):
    path = tmp_path / "elements_mod.py"
    path.write_text(textwrap.dedent(BASE))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import elements_mod; "
        "print(elements_mod.Analysis().signature)"
    )
    for seed in ("0", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == base


# ---------------------------------------------------------------- canonical values


def test_canonical_encoding_is_order_and_type_stable():
    assert sig.encode({"b": 1, "a": 2}) == sig.encode({"a": 2, "b": 1})
    assert sig.encode(np.int64(3)) == sig.encode(3)
    assert sig.encode(np.float32(0.5)) == sig.encode(0.5)
    assert sig.encode(0.1) != sig.encode(np.float32(0.1))  # different values
    assert sig.encode(float("nan")) == sig.encode(np.nan)
    assert sig.encode(True) != sig.encode(1)
    assert sig.encode("1") != sig.encode(1)
    assert sig.encode(np.arange(3)) == sig.encode(np.arange(3))
    assert sig.encode(np.arange(3)) != sig.encode(np.arange(3.0))
    assert sig.encode(np.arange(3, dtype=">i8")) == sig.encode(np.arange(3, dtype="<i8"))


def test_quantities_encode_by_physical_value():
    assert sig.encode(1 * u.keV) == sig.encode(1000 * u.eV)
    assert sig.encode(1 * u.km) == sig.encode(1000.0 * u.m)
    assert sig.encode(1 * u.keV) != sig.encode(1 * u.MeV)
    assert sig.encode(1 * u.s) != sig.encode(1 * u.m)


def test_unencodable_parameter_is_refused_at_class_definition():
    with pytest.raises(TypeError, match=r"Bad\.handle: parameters must be plain values"):

        class Bad(nrt.Element):
            handle = object()


def test_ast_serialisation_ignores_fields_new_pythons_add():
    import ast

    tree = ast.parse("def f(x):\n    return x")
    tree.body[0].type_params = []  # Python 3.12+ adds this field, empty
    assert sig._ast_tree(tree) == sig._ast_tree(ast.parse("def f(x):\n    return x"))
