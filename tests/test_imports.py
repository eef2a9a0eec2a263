"""The import graph of nnlab: no cycles, every import points down the layers, and the
light commands never load torch."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnlab"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store-format1"
VAE_RUN = "vae-20261129-022720-format1"

# Each module's layer: a module may import only modules of a lower layer. Helpers sit at
# the bottom, the command line at the top; a new module must be placed here.
LAYERS = [
    ["nnlab", "nnlab.errors"],
    [
        "nnlab.console",
        "nnlab.options",
        "nnlab.progress",
        "nnlab.metricslog",
        "nnlab.density",
        "nnlab.files",
        "nnlab.schema",
        "nnlab.tblog",
    ],
    ["nnlab.tasks"],
    ["nnlab.config", "nnlab.data", "nnlab.render", "nnlab.render.style"],
    [
        "nnlab.store",
        "nnlab.models",
        "nnlab.health",
        "nnlab.render.panels",
        "nnlab.help",
        "nnlab.grid",
    ],
    ["nnlab.record", "nnlab.cbp", "nnlab.runload", "nnlab.render.gif", "nnlab.executors"],
    ["nnlab.analysis", "nnlab.snapshots", "nnlab.render.sources"],
    ["nnlab.latentstats"],
    ["nnlab.trainer", "nnlab.render.metrics", "nnlab.sweepsummary", "nnlab.render.sweepplot"],
    [
        "nnlab.train",
        "nnlab.summary",
        "nnlab.embed",
        "nnlab.render.animate",
        "nnlab.render.masks",
        "nnlab.render.decode",
    ],
    ["nnlab.sweep", "nnlab.export", "nnlab.report"],
    ["nnlab.cli"],
    ["nnlab.__main__"],
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Every nnlab module and the nnlab modules it imports, at any depth of its code
    (imports inside functions count: a lazy import is still a dependency)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_imports_point_down_the_layers():
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    graph = import_graph()
    assert set(graph) == set(rank), f"place new modules in LAYERS: {set(graph) ^ set(rank)}"
    upward = [
        f"{m} (layer {rank[m]}) imports {d} (layer {rank[d]})"
        for m, deps in graph.items()
        for d in deps
        if rank[d] >= rank[m] and d != "nnlab"
    ]
    assert not upward, "\n".join(upward)


def imported_modules(*args: str, runs: Path) -> set[str]:
    """Top-level packages that `python -X importtime -m nnlab ARGS` imported."""
    env = dict(os.environ, NNLAB_RUNS=str(runs), NNLAB_OFFLINE="1", PAGER="cat")
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nnlab", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s+(\w+)\s*$", r.stderr, re.M)}


@pytest.mark.parametrize(
    "args",
    [
        ("animate", "--help"),
        ("summary", "--json"),
        ("summary", VAE_RUN, "--json"),
        ("animate", VAE_RUN, "--every=4", "--dpi=30"),
    ],
)
def test_light_commands_import_no_torch(args, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs)
    modules = imported_modules(*args, runs=runs)
    assert "nnlab" in modules  # the check sees nnlab's own imports
    assert "torch" not in modules
