"""The distribution installs one import package, rag_retrievers, and importing it stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_only_rag_retrievers(tmp_path: Path) -> None:
    # Build from a clean copy of the source tree: a build/ folder left in the checkout by an
    # earlier build could otherwise carry stale files into the wheel, and the checkout stays as is.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            ".venv",
            "runs",
            "*.rrcol",
        ),
    )
    out = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("rag_retrievers-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert len(dist_info) == 1
    outside = [n for n in names if n.split("/")[0] not in {"rag_retrievers", *dist_info}]
    assert outside == []
    assert "rag_retrievers/__init__.py" in names
    assert "rag_retrievers/adapters/__init__.py" in names
    assert "rag_retrievers/adapters/bm25.py" in names
    assert "rag_retrievers/evals/__init__.py" in names
    assert "rag_retrievers/evals/retrieval.py" in names
    assert "rag_retrievers/evals/bench/__main__.py" in names
    for layer in ("scoring/topk.py", "index/storage.py", "engines/milvus_search.py", "app/rag.py"):
        assert f"rag_retrievers/{layer}" in names
    assert "rag_retrievers/cli/__init__.py" in names
    assert not any(n.startswith("rag_retrievers/bench/") for n in names)
    assert "rag_retrievers/encoders/models.py" in names
    assert "rag_retrievers/evals/beir.py" in names
    tops = {n.split("/")[0] for n in names}
    assert "adapters" not in tops
    assert "evals" not in tops
    assert not any(n.startswith(("tests/", "examples/")) for n in names)

    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
    if top_level is not None:
        assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["rag_retrievers"]


def test_import_stays_light() -> None:
    code = "import rag_retrievers, sys; print('torch' in sys.modules, 'chromadb' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


def test_bm25_works_without_heavy_dependencies() -> None:
    code = (
        "import sys\n"
        "from rag_retrievers import BM25, Document\n"
        "b = BM25(); b.add([Document(id='a', text='sparse retrieval')])\n"
        "assert b.search('retrieval')[0].id == 'a'\n"
        "heavy = {'torch', 'transformers', 'chromadb', 'pymilvus', 'llama_cpp', "
        "'sentence_transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_adapters_and_evals_are_subpackages() -> None:
    import rag_retrievers.adapters.bm25
    import rag_retrievers.evals.retrieval

    import rag_retrievers

    assert rag_retrievers.adapters.bm25.BM25 is rag_retrievers.BM25
    assert rag_retrievers.evals.retrieval.__name__ == "rag_retrievers.evals.retrieval"


def test_every_subpackage_is_listed_for_setuptools() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"rag_retrievers.adapters", "rag_retrievers.evals"}
    for init in (root / "rag_retrievers").rglob("__init__.py"):
        parts = init.parent.relative_to(root).parts
        found.add(".".join(parts))
    # subpackages of the mapped folders (evals/faithfulness -> rag_retrievers.evals.faithfulness)
    for folder in ("adapters", "evals"):
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root / folder).parts
            found.add(".".join(("rag_retrievers", folder, *parts)))
    assert found == listed
