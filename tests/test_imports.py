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

# The layers, bottom to top: a module may import the modules of its own package and of
# the packages below it, never of one above (the import-cycle test covers a package's
# own modules). A new package must be placed here.
LAYERS = [
    "helpers",
    "data",
    "families",
    "config",
    "store",
    "analysis",
    "training",
    "render",
    "library",
    "server",
    "commands",
]


def layer_of(module: str) -> int:
    """The layer of an nnlab module: its package's place in LAYERS (the package's own
    __init__ with it); nnlab itself, the public facade, and __main__ are above them all
    (no module of a layer imports the package root)."""
    if module in ("nnlab", "nnlab.__main__"):
        return len(LAYERS)
    package = module.split(".")[1]
    assert package in LAYERS, f"{module} is not in a layer package: place it in LAYERS"
    return LAYERS.index(package)


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
                subs = [f"{base}.{a.name}" for a in node.names]
                # `from nnlab import families` names a package, not the root's own names
                names_root = any(t not in modules for t in subs)
                targets = ([base] if names_root else []) + subs
            for t in targets:
                if t in modules and t != name:
                    deps.add(t)
        graph[name] = deps
    # the package root re-exports the public API lazily, naming each module as text
    from nnlab import _LAZY

    graph["nnlab"] |= {module for module, _ in _LAZY.values()}
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
    graph = import_graph()
    upward = [
        f"{m} ({LAYERS[layer_of(m)] if layer_of(m) < len(LAYERS) else m}) imports {d}"
        for m, deps in graph.items()
        for d in deps
        if layer_of(d) > layer_of(m) or (layer_of(d) == layer_of(m) == len(LAYERS))
    ]
    assert not upward, "\n".join(upward)
    assert graph["nnlab"] >= {"nnlab.library.reader", "nnlab.library.writer"}  # seen


def test_every_module_sits_in_a_layer_package():
    for m in import_graph():
        layer_of(m)  # raises for a module outside the packages
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} == set(LAYERS)


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


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize(
    "args",
    [
        ("animate", "--help"),
        ("summary", "--json"),
        ("summary", VAE_RUN, "--json"),
        ("animate", VAE_RUN, "--every=4", "--dpi=30"),
        ("sweep", "vae", "--beta=1,2", "--dry_run"),  # the coordinator leaves torch to workers
    ],
)
def test_light_commands_import_no_torch(args, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE, runs)
    modules = imported_modules(*args, runs=runs)
    assert "nnlab" in modules  # the check sees nnlab's own imports
    assert "torch" not in modules


def test_every_module_has_its_test_module():
    """tests/test_<module>.py, or test_<package>_<module>.py where two packages share a
    module name, or test_<package>.py for a package tested as one (the families)."""
    tests = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    missing = []
    for name in sorted(import_graph()):
        parts = name.split(".")
        if len(parts) < 3 or parts[-1] == "__main__":
            continue
        package, module = parts[1], parts[-1]
        wanted = {f"test_{module}.py", f"test_{package}_{module}.py", f"test_{package}.py"}
        if not wanted & tests:
            missing.append(f"{name}: add tests/test_{module}.py")
    assert not missing, "\n".join(missing)


def _literals(pattern: str, skip_package: str, allowed=()) -> list[str]:
    """file:line of each string constant of nnlab's code outside `skip_package` that is
    exactly `pattern` (docstrings, and dict keys where a dict is made or read: names in an
    output such as summary --json's, are not uses)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == skip_package:
            continue
        tree = ast.parse(path.read_text())
        skip = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                skip.add(id(body[0].value))  # a docstring
            if isinstance(node, ast.Dict):
                skip.update(id(k) for k in node.keys if k is not None)
            if isinstance(node, ast.Subscript):
                skip.add(id(node.slice))  # d["media"]: a key of a dict, as above
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
                and re.fullmatch(pattern, node.value)
                and (path.name, node.value) not in allowed
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
    return found


def test_the_store_owns_a_runs_facts_statuses_and_file_names():
    """Outside nnlab/store: no meta.json read as a dict, no status word, no run-store file
    name (each is asked of store.meta.Meta, store.meta.Status or a store.folders.Run)."""
    meta_reads = [
        f"{p.relative_to(PACKAGE)}:{i}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.relative_to(PACKAGE).parts[0] != "store"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bmeta(\.get\(|\[)", line)
    ]
    assert not meta_reads, "\n".join(meta_reads)
    words = "running|finished|interrupted|diverged|failed|pruned|pending|damaged"
    statuses = _literals(words, "store")
    assert not statuses, "\n".join(statuses)
    names = (
        "meta.json|config.yaml|metrics.jsonl|lock|checkpoints|latest.pt|final.pt|latents|"
        "probe.npz|media|embeddings|projections|latent-metrics.json|tasks.npz|sweep.json|"
        "point.json|study.journal"
    ).replace(".", r"\.")
    # the optional extra that installs t-SNE and UMAP is called projections too
    allowed = {("projection.py", "projections")}
    file_names = _literals(names, "store", allowed)
    assert not file_names, "\n".join(file_names)


def test_no_function_is_over_sixty_lines():
    """A function a reader can see whole on one screen (docstring and comments counted)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {lines}")
    assert not long, "\n".join(long)
