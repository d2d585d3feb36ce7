"""Nothing received or cached is unpickled or evaluated: a static scan of the package.

Every module of nrt/, detectors/ and checks/ is parsed (AST, not grep: comments and
strings do not count) and these are refused anywhere: pickle, cPickle, cloudpickle, dill,
jsonpickle, marshal and shelve imports; eval, exec and compile calls; yaml.load /
unsafe_load / full_load; np.load with allow_pickle=True; pandas.read_pickle, torch.load,
joblib.load; subprocess with shell=True or create_subprocess_shell. Dynamic imports
(importlib.import_module) are allowed only where the module name comes from the
operator (the CLI command table, `nrt reprocess --graph`, NRT_IRODS_SESSION_FACTORY), and
the list is pinned so a new one must be reviewed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("nrt", "detectors", "checks")
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "jsonpickle",
                  "marshal", "shelve"}  # fmt: skip
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}
BANNED_ATTRS = {("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                ("pd", "read_pickle"), ("pandas", "read_pickle"), ("torch", "load"),
                ("joblib", "load"), ("asyncio", "create_subprocess_shell"),
                ("os", "system"), ("os", "popen")}  # fmt: skip
#: file -> number of importlib.import_module calls, each reviewed: the name is the operator's.
DYNAMIC_IMPORTS = {"nrt/cli.py": 1, "nrt/reprocess.py": 1, "nrt/cache/irods.py": 1}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        return (*_dotted(node.value), node.attr)
    return ()


def findings(source: str, name: str) -> tuple[list[str], int]:
    """(problems, dynamic imports) in one module's source."""
    problems, dynamic = [], 0
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    problems.append(f"{where}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_MODULES:
                problems.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            if len(dotted) == 1 and dotted[0] in BANNED_CALLS:
                problems.append(f"{where}: {dotted[0]}(...)")
            if dotted[-2:] in BANNED_ATTRS:
                problems.append(f"{where}: {'.'.join(dotted)}(...)")
            if dotted[-1:] == ("import_module",):
                dynamic += 1
            for kw in node.keywords:
                literal_true = isinstance(kw.value, ast.Constant) and kw.value.value is True
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    problems.append(f"{where}: allow_pickle={ast.unparse(kw.value)}")
                if kw.arg == "shell" and literal_true:
                    problems.append(f"{where}: shell=True")
    return problems, dynamic


def modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_package_never_unpickles_or_evaluates() -> None:
    assert len(modules()) > 20, "the scan found too few modules to mean anything"
    problems, dynamic = [], {}
    for path in modules():
        found, n = findings(path.read_text(), str(path.relative_to(ROOT)))
        problems += found
        if n:
            dynamic[str(path.relative_to(ROOT))] = n
    assert problems == []
    assert dynamic == DYNAMIC_IMPORTS, "a new dynamic import: check where its name comes from"


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.loads(b)",
        "from marshal import loads",
        "eval(payload)",
        "exec(text)",
        "yaml.load(stream)",
        "np.load(path, allow_pickle=True)",
        "numpy.load(path, allow_pickle=flag)",
        "subprocess.run(cmd, shell=True)",
        "import cloudpickle as cp",
        "pd.read_pickle(p)",
    ],
)
def test_the_scan_catches_each_pattern(snippet: str) -> None:
    problems, _ = findings(snippet, "snippet.py")
    assert problems, f"not caught: {snippet}"


def test_the_scan_allows_the_safe_forms() -> None:
    safe = "np.load(p, allow_pickle=False)\nre.compile('x')\njson.loads(b)\nyaml.safe_load(s)"
    assert findings(safe, "safe.py") == ([], 0)
