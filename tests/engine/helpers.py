"""Helpers for engine tests: load element classes from source text, count runs."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import textwrap
from pathlib import Path
from types import ModuleType

_counter = itertools.count()


def load_module(tmp_path: Path, source: str) -> ModuleType:
    """Import `source` as a fresh module from a real file (so inspect.getsource works)."""
    name = f"nrt_test_mod_{next(_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def signature_of(tmp_path: Path, source: str, cls: str = "Analysis", **kwargs) -> str:
    return getattr(load_module(tmp_path, source), cls)(**kwargs).signature
