"""Griffe extensions for the API pages (mkdocstrings; configured in mkdocs.yml).

``PackageDir`` finds the packages that pyproject.toml maps into ``rag_retrievers`` with setuptools
``package-dir`` (``adapters/`` as ``rag_retrievers.adapters``, ``evals/`` as
``rag_retrievers.evals``). Griffe reads sources without importing them and walks
``rag_retrievers/`` on disk, where an editable install has no ``adapters`` or ``evals`` folder (an
import hook maps them). It asks the import system where each one lives, loads that folder with the
same loader and attaches it under its installed name; where the package already has the member (a
regular install) it does nothing.

``DocstringMarkdown`` lets the docstrings stay as they are (reST-flavoured, doctests run by
tests/test_doctests.py) and still render as Markdown: each doctest block is fenced as ``pycon``
code, and Sphinx roles (``:class:`Hit```) become plain code spans.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import griffe

MAPPED = ("adapters", "evals")
ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`~?([^`]+)`")


class PackageDir(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "rag_retrievers":
            return
        for name in MAPPED:
            if name in pkg.members:
                continue
            spec = importlib.util.find_spec(f"rag_retrievers.{name}")
            if spec is None or not spec.submodule_search_locations:
                continue
            module = loader.load(Path(next(iter(spec.submodule_search_locations))))
            if isinstance(module, griffe.Module):
                pkg.set_member(name, module)


def fence_doctests(text: str) -> str:
    """Fence each run of doctest lines (``>>>`` up to the next blank line) as ``pycon`` code."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DocstringMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(ROLE.sub(r"`\1`", obj.docstring.value))
