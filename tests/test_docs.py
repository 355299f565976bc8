"""The README and the documentation site (docs/, mkdocs.yml): links that resolve, a README that
fits a newcomer's screen, headline figures that match their pages, and a strict site build."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^\s*```.*?^\s*```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text outside fenced code blocks and code spans."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub and MkDocs (toc's default slugify) give a heading: lowercase, inline
    markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "").lower())
    return re.sub(r"\s+", "-", text.strip())


def test_slug() -> None:
    assert slug("Score fusion: CombSUM of z-scores") == "score-fusion-combsum-of-z-scores"
    assert slug("ColBERT (late interaction)") == "colbert-late-interaction"
    assert slug("Use `RAG` from Python") == "use-rag-from-python"


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8")))}


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link points at an existing file, and at an existing heading when it names
    one; README's links are plain relative paths into docs/, so they work on GitHub too."""
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_file(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor} in {path}"


def test_readme_fits_and_links_every_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    assert not [p.relative_to(ROOT) for p in PAGES if p.resolve() not in linked]


def test_readme_set_up_is_what_ci_runs() -> None:
    """CI installs exactly as the README says."""
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace(" --quiet", "")
    for command in ("pip install torch==2.13.0", 'pip install -e ".[dev]"', "pytest --run-slow"):
        assert command in readme
        assert command in ci
    assert "mkdocs build --strict" in ci


def test_headline_figures_match_their_pages() -> None:
    """Each figure in the README's headline table appears, as written, on the page it links."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| what | figure | where |") :].split("\n\n", 1)[0]
    rows = table.splitlines()[2:]
    assert len(rows) >= 8
    for row in rows:
        _, figure, where = (cell.strip() for cell in row.strip("|").split("|"))
        (target,) = LINK.findall(where)
        page = (ROOT / target.partition("#")[0]).read_text(encoding="utf-8")
        numbers = re.findall(r"\d[\d,]*(?:\.\d+)?x?", figure)
        assert numbers, row
        for number in numbers:
            assert re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d,]|\.\d)", page), (
                f"{number} ({figure}) is not on {target}"
            )


def test_bm25_table_lives_on_the_retrieval_page() -> None:
    """tests/test_readme_figures.py checks this table against `rag-retrievers eval retrieval`."""
    page = (DOCS / "results" / "retrieval.md").read_text(encoding="utf-8")
    assert "| dataset (BM25, defaults) | nDCG@10 | Recall@100 | MRR@10 | MAP |" in page
    assert "| scifact | 0.6762 | 0.9127 | 0.6413 | 0.6369 |" in page


def test_doctest_blocks_render_as_code() -> None:
    """The site's Griffe extension fences docstring examples as code (else Markdown reads
    ``['a']`` as a link) and turns Sphinx roles into code spans."""
    path = DOCS / "griffe_extensions.py"
    spec = importlib.util.spec_from_file_location("griffe_extensions", path)
    if importlib.util.find_spec("griffe") is None or spec is None or spec.loader is None:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Intro.\n\n    >>> [1]\n    [1]\n\nMore."
    assert module.fence_doctests(text) == (
        "Intro.\n\n    ```pycon\n    >>> [1]\n    [1]\n    ```\n\nMore."
    )
    assert module.ROLE.sub(r"`\1`", "see :class:`~rag_retrievers.Hit`") == (
        "see `rag_retrievers.Hit`"
    )


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`, as .ci/run runs it: every page, link, anchor and API page
    (mkdocstrings) resolves; about 3 s."""
    if any(importlib.util.find_spec(m) is None for m in ("mkdocs", "mkdocstrings", "material")):
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    api = (site / "api" / "retrievers" / "index.html").read_text(encoding="utf-8")
    for name in ("rag_retrievers.base.Retriever", "rag_retrievers.adapters.bm25.BM25"):
        assert f'id="{name}"' in api  # adapters/ found under its installed name
    # a docstring example rendered as highlighted console code, its prompt marked as such
    assert '<span class="gp">&gt;&gt;&gt;' in api
