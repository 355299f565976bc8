"""The package's layers: each imports only those below it, and no two modules import each other.

Every module's imports are read with ``ast`` (also the ones inside functions; only imports under
``if TYPE_CHECKING:`` are exempt, they never run). Lowest layer first:

foundation  errors, records, filters, protocols, name_registry, registry, progress
scoring     rag_retrievers/scoring/    numpy maths: BM25, fusion, MaxSim, MUVERA, PLAID, k-means
index       rag_retrievers/index/      storage, document store, sparse / vector / token indexes
encoders    rag_retrievers/encoders/   analyzer, neural encoders, model identity
engines     rag_retrievers/engines/    Chroma, Milvus
generators  rag_retrievers/generators/
interface   base, spec, testing, langchain_retriever, and the package itself
adapters    adapters/ (rag_retrievers.adapters)
ingest      rag_retrievers/ingest/     loaders, chunking, folder runs kept in step
app         rag_retrievers/app/        RAG pipeline, ask, demo
evals       evals/ (rag_retrievers.evals)
bench       evals/bench/ (rag_retrievers.evals.bench)
cli         rag_retrievers/cli/
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "rag_retrievers"
#: source folder -> the package it is installed as (pyproject.toml's package-dir)
SOURCES = {
    "rag_retrievers": "rag_retrievers",
    "adapters": "rag_retrievers.adapters",
    "evals": "rag_retrievers.evals",
}

LAYERS = (
    "foundation",
    "scoring",
    "index",
    "encoders",
    "engines",
    "generators",
    "interface",
    "adapters",
    "ingest",
    "app",
    "evals",
    "bench",
    "cli",
)
#: module or package prefix -> layer; the longest prefix wins
PREFIXES = {
    "rag_retrievers.errors": "foundation",
    "rag_retrievers.records": "foundation",
    "rag_retrievers.filters": "foundation",
    "rag_retrievers.protocols": "foundation",
    "rag_retrievers.name_registry": "foundation",
    "rag_retrievers.registry": "foundation",
    "rag_retrievers.progress": "foundation",
    "rag_retrievers.scoring": "scoring",
    "rag_retrievers.index": "index",
    "rag_retrievers.encoders": "encoders",
    "rag_retrievers.engines": "engines",
    "rag_retrievers.generators": "generators",
    "rag_retrievers": "interface",  # base, spec, testing, langchain_retriever, __init__
    "rag_retrievers.adapters": "adapters",
    "rag_retrievers.ingest": "ingest",
    "rag_retrievers.app": "app",
    "rag_retrievers.evals": "evals",
    "rag_retrievers.evals.bench": "bench",
    "rag_retrievers.cli": "cli",
}


def discover(sources: Mapping[Path, str]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under each source folder."""
    modules = {}
    for folder, package in sources.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield from _imports(other)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child)


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of the package that ``name`` imports (absolute or relative imports)."""
    found = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]  # `import a.b.c` of an attribute: a.b
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str, prefixes: Mapping[str, str]) -> str:
    best = max((p for p in prefixes if module == p or module.startswith(p + ".")), key=len)
    return prefixes[best]


def check(
    sources: Mapping[Path, str], prefixes: Mapping[str, str], layers: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """(upward imports as "a (layer) imports b (layer)", one import cycle or [])."""
    modules = discover(sources)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    rank = {layer: i for i, layer in enumerate(layers)}
    upward = []
    for name, targets in sorted(graph.items()):
        mine = layer_of(name, prefixes)
        for target in sorted(targets):
            theirs = layer_of(target, prefixes)
            if rank[theirs] > rank[mine]:
                upward.append(f"{name} ({mine}) imports {target} ({theirs})")
    return upward, find_cycle(graph)


def find_cycle(graph: Mapping[str, set[str]]) -> list[str]:
    """One cycle of the graph as [a, b, ..., a], or [] if there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_every_module_has_a_layer() -> None:
    modules = discover({ROOT / folder: package for folder, package in SOURCES.items()})
    assert len(modules) > 100
    for name in modules:
        assert layer_of(name, PREFIXES) in LAYERS


def test_no_module_imports_a_higher_layer_and_there_is_no_cycle() -> None:
    upward, cycle = check(
        {ROOT / folder: package for folder, package in SOURCES.items()}, PREFIXES, LAYERS
    )
    assert upward == [], "upward imports:\n" + "\n".join(upward)
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


SYNTHETIC_PREFIXES = {"pkg": "top", "pkg.low": "low"}


def test_the_checker_reports_a_lower_layer_importing_a_higher_one(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/api.py": "from pkg.low import maths\n",
            "pkg/low/__init__.py": "",
            "pkg/low/maths.py": "def f():\n    from pkg import api  # inside a function\n",
            "pkg/low/typed.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import api\n"
            ),
        },
    )
    upward, cycle = check({tmp_path / "pkg": "pkg"}, SYNTHETIC_PREFIXES, ("low", "top"))
    assert upward == ["pkg.low.maths (low) imports pkg.api (top)"]  # typed.py is exempt
    assert cycle == ["pkg.api", "pkg.low.maths", "pkg.api"]


def test_the_checker_reports_a_cycle_within_one_layer(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "from .c import thing\n",
            "pkg/c.py": "import pkg.a\nthing = 1\n",
        },
    )
    upward, cycle = check({tmp_path / "pkg": "pkg"}, {"pkg": "top"}, ("top",))
    assert upward == []
    assert cycle == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_a_clean_synthetic_package_passes(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/api.py": "from pkg.low.maths import f\n",
            "pkg/low/__init__.py": "",
            "pkg/low/maths.py": "import numpy\n\ndef f():\n    return 1\n",
        },
    )
    assert check({tmp_path / "pkg": "pkg"}, SYNTHETIC_PREFIXES, ("low", "top")) == ([], [])


_WRAPPER = """
import atexit, json, sys
def report():
    with open(OUT, "w") as f:
        json.dump(sorted(sys.modules), f)
OUT = sys.argv[1]
atexit.register(report)
from rag_retrievers.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_search_imports_no_eval_bench_torch_or_pymilvus(tmp_path: Path) -> None:
    import json

    from rag_retrievers import BM25, Document

    bm25 = BM25()
    bm25.add([Document(id="1", text="layers import downward only")])
    bm25.save(tmp_path / "col")
    out = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out), "search", str(tmp_path / "col"), "layers"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "layers import downward only" in done.stdout
    loaded = json.loads(out.read_text())
    assert "rag_retrievers.adapters.bm25" in loaded  # it did open the collection
    heavy = [
        m
        for m in loaded
        if m.startswith(("rag_retrievers.evals", "torch", "pymilvus", "chromadb"))
        or m in ("torch", "pymilvus", "sentence_transformers", "transformers")
    ]
    assert heavy == []
