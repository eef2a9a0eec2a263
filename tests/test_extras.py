"""Each optional extra installs everything its code paths import (#37 item 23): CI installs
every extra at once, which once hid that the `search` extra lacked scikit-learn.

Statically: every third-party module nnlab imports is core (a requirement, or one of its
requirements' own) or belongs to an extra (tests/conftest.py's EXTRA_MODULES, which also
names what a dependency imports on nnlab's path, such as scikit-learn for Optuna's
fANOVA); and each of an extra's modules is installed by that extra's requirements and
theirs (importlib.metadata), not by another extra's. CI's quick pass with every extra
hidden (NNLAB_TEST_WITHOUT_EXTRAS) shows that each extra's tests skip without it.
"""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from tests.conftest import EXTRA_MODULES

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# what pytest and the test tooling bring; no nnlab module imports them
TOOLING = {"pytest", "ruff", "_pytest"}


def _name(requirement: str) -> str:
    return Requirement(requirement).name


def _closure(names: list[str]) -> set[str]:
    """The distributions that installing `names` installs: each one's requirements that
    apply without extras, recursively (normalised names)."""
    seen: set[str] = set()
    todo = [n.lower().replace("_", "-") for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here (an extra CI installs): its own name still counts
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def _modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules the distributions provide (as installed here)."""
    out = set()
    for module, dists in metadata.packages_distributions().items():
        if any(d.lower().replace("_", "-") in distributions for d in dists):
            out.add(module)
    return out


def _third_party_imports() -> dict[str, set[str]]:
    """Each top-level module nnlab's code imports that is neither nnlab's nor Python's,
    with the nnlab modules that import it."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / "nnlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.partition(".")[0]
                if top != "nnlab" and top not in sys.stdlib_module_names:
                    out.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return out


def test_every_third_party_import_is_core_or_an_extras():
    core = _modules_of(_closure([_name(r) for r in PROJECT["dependencies"]]))
    extras = {m for modules in EXTRA_MODULES.values() for m in modules}
    stray = {
        m: sorted(where)
        for m, where in _third_party_imports().items()
        if m not in core and m not in extras and m not in TOOLING
    }
    assert not stray, f"imported, but neither core nor listed under an extra: {stray}"


def test_the_extras_listed_here_are_the_projects():
    declared = set(PROJECT["optional-dependencies"]) - {"test", "dev"}
    assert set(EXTRA_MODULES) == declared


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_each_extra_installs_the_modules_of_its_code_paths(extra):
    requirements = [_name(r) for r in PROJECT["optional-dependencies"][extra]]
    closure = _closure(requirements)
    missing = []
    for module in EXTRA_MODULES[extra]:
        dists = {
            d.lower().replace("_", "-") for d in metadata.packages_distributions().get(module, [])
        }
        if not dists:
            pytest.skip(f"{module} is not installed here (the {extra} extra)")
        if not dists & closure:
            missing.append(f"{module} (from {', '.join(sorted(dists))})")
    assert not missing, f"the {extra} extra does not install: {missing}"
