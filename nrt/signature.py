"""Signatures: canonical encoding of values, code hashing, Merkle signatures.

A signature identifies a result by what produced it, never by where it is stored.
It is the sha256 of a canonical document (see ``docs/signatures.md``)::

    {"name": qualname, "version": ..., "params": {...}, "inputs": {...: sig},
     "code": code hash, "includes": [...]}

Everything here must give the same bytes in every process, on every machine,
under any ``PYTHONHASHSEED`` and on every supported Python version, so nothing
relies on ``hash()``, ``repr()`` of containers, dict order or ``ast.dump``
(whose output changed in Python 3.13).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import math
import textwrap
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

#: Bump only when the encoding itself changes (it changes every signature).
ENCODING_VERSION = 1


class SignatureError(TypeError):
    """A value cannot be encoded canonically, so it cannot be part of a signature."""


# ---------------------------------------------------------------- values


def _float_token(x: float) -> list:
    """Integral floats encode like ints, so ``6`` and ``6.0`` (equal) sign alike."""
    if math.isfinite(x) and x == int(x) and abs(x) < 2**63:
        return ["i", str(int(x))]
    if math.isnan(x):
        return ["f", "nan"]
    return ["f", repr(float(x))]  # shortest round-trip repr: stable since Python 3.1


def canonical(value: Any) -> Any:
    """A JSON-safe tagged tree with exactly one form for each value.

    Equal values encode alike across types where Python considers them equal
    (``6 == 6.0 == np.int64(6)``; tuples as lists); dict keys are sorted by their
    own encoding; numpy arrays by dtype, shape and a hash of their bytes;
    Quantities in SI base units with the value rounded to 15 significant digits.
    """
    if value is None:
        return ["n"]
    if isinstance(value, bool | np.bool_):
        return ["b", bool(value)]
    if isinstance(value, int | np.integer):
        return ["i", str(int(value))]
    if isinstance(value, float | np.floating):
        return _float_token(float(value))
    if isinstance(value, complex | np.complexfloating):
        return ["c", _float_token(value.real), _float_token(value.imag)]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, bytes):
        return ["y", hashlib.sha256(value).hexdigest()]
    quantity = _quantity_token(value)
    if quantity is not None:
        return quantity
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return ["l", [canonical(v) for v in value.tolist()]]
        arr = np.require(value, requirements="C")
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        return ["a", arr.dtype.str, list(arr.shape), hashlib.sha256(arr.tobytes()).hexdigest()]
    if isinstance(value, list | tuple):
        return ["l", [canonical(v) for v in value]]
    if isinstance(value, frozenset | set):
        return ["e", sorted((canonical(v) for v in value), key=_dumps)]
    if isinstance(value, Mapping):
        items = [(canonical(k), canonical(v)) for k, v in value.items()]
        return ["d", sorted(items, key=lambda kv: _dumps(kv[0]))]
    raise SignatureError(
        f"cannot encode a {type(value).__module__}.{type(value).__qualname__} canonically; "
        "use numbers, strings, bytes, None, numpy values, astropy Quantities, "
        "or lists/tuples/dicts of those"
    )


def _quantity_token(value: Any) -> list | None:
    units = _astropy_units()
    if units is None or not isinstance(value, units.Quantity):
        return None
    si = value.si
    rounded = np.vectorize(lambda v: float(f"{v:.15g}"), otypes=[float])(np.asarray(si.value))
    return ["q", canonical(rounded if rounded.ndim else float(rounded)), si.unit.to_string()]


def _astropy_units():
    import sys

    # Only consult astropy if it is already imported: a Quantity cannot exist otherwise.
    return sys.modules.get("astropy.units")


def _dumps(tree: Any) -> str:
    return json.dumps(
        tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
    )


def encode(value: Any) -> bytes:
    """The canonical bytes of a value."""
    return _dumps(canonical(value)).encode()


def digest(value: Any) -> str:
    """Hex sha256 of the canonical encoding of a value."""
    return hashlib.sha256(encode(value)).hexdigest()


# ---------------------------------------------------------------- code


def _ast_tree(node: Any) -> Any:
    """A version-stable serialisation of an AST: node names and non-empty fields.

    ``ast.dump`` is not used: its output changed in Python 3.13 (it omits empty
    fields) and new Python versions add fields with empty defaults (``type_params``).
    Dropping every None/empty field gives one form for all of them.
    """
    if isinstance(node, ast.AST):
        fields = []
        for name in node._fields:
            if name in ("type_comment", "kind"):
                continue
            value = getattr(node, name, None)
            if value is None or value == []:
                continue
            fields.append([name, _ast_tree(value)])
        return [type(node).__name__, fields]
    if isinstance(node, list):
        return [_ast_tree(v) for v in node]
    if isinstance(node, float | int | complex | bool | str | bytes) or node is None or node is ...:
        return canonical(node) if node is not ... else ["ellipsis"]
    return repr(node)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _source_ast_hash(obj: Any) -> str | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:  # e.g. a lambda inside an expression
        return None
    tree = _strip_docstrings(tree)
    # Decorators are part of the code, names of the function are not (renames
    # show up through the class's qualified name and the attribute listing).
    return digest(_ast_tree(tree))


def _bytecode_hash(code: types.CodeType) -> str:
    """Fallback when no source is available (REPL, exec): not stable across Python versions."""

    def walk(c: types.CodeType) -> list:
        consts = [
            walk(k) if isinstance(k, types.CodeType) else canonical_or_repr(k) for k in c.co_consts
        ]
        return ["code", c.co_code.hex(), consts, list(c.co_names)]

    return digest(["bytecode", walk(code)])


def canonical_or_repr(value: Any) -> Any:
    try:
        return canonical(value)
    except SignatureError:
        return ["r", type(value).__qualname__]


def function_hash(func: Callable) -> str:
    """Hash of a function's normalized source (comments, docstrings, formatting ignored)."""
    func = inspect.unwrap(func)
    found = _source_ast_hash(func)
    if found is not None:
        return found
    code = getattr(func, "__code__", None)
    if code is None:
        raise SignatureError(f"cannot hash the code of {func!r}: no source and no bytecode")
    return _bytecode_hash(code)


def _members(cls: type) -> Iterable[tuple[str, Any]]:
    for name, member in sorted(vars(cls).items()):
        if isinstance(member, staticmethod | classmethod):
            yield name, member.__func__
        elif isinstance(member, property):
            for part in ("fget", "fset", "fdel"):
                if getattr(member, part) is not None:
                    yield f"{name}.{part}", getattr(member, part)
        elif inspect.isfunction(member):
            yield name, member


def class_code_hash(cls: type, stop: type) -> str:
    """Hash of the methods a class and its bases (up to, not including, `stop`) define."""
    parts = []
    for klass in cls.__mro__:
        if klass is stop or klass is object or issubclass(stop, klass):
            continue
        methods = [[name, function_hash(func)] for name, func in _members(klass)]
        parts.append([klass.__qualname__, methods])
    return digest(parts)


def include_token(item: Any) -> Any:
    """The part of a signature contributed by one entry of ``hash_includes``."""
    if inspect.isclass(item):
        methods = [[n, function_hash(f)] for n, f in _members(item)]
        return ["class", item.__qualname__, methods]
    if inspect.isfunction(item) or inspect.ismethod(item):
        return ["function", item.__qualname__, function_hash(item)]
    if inspect.ismodule(item):
        found = _source_ast_hash(item)
        if found is None:
            raise SignatureError(f"hash_includes: no source for module {item.__name__}")
        return ["module", item.__name__, found]
    return ["value", canonical(item)]


def merkle(components: Mapping[str, Any]) -> str:
    """The signature of an element from its already-canonical components."""
    return hashlib.sha256(
        _dumps(["nrt-signature", ENCODING_VERSION, dict(components)]).encode()
    ).hexdigest()
