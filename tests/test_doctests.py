"""The examples in public docstrings run as written."""

import doctest
import importlib
import pkgutil

import pytest

SKIP = {"rag_retrievers.testing", "rag_retrievers.cli", "rag_retrievers.evals.bench"}
# adapters/ and evals/ are mapped into the package, so an editable install does not list them
# under rag_retrievers.__path__: walk each package itself
PACKAGES = ["rag_retrievers", "rag_retrievers.adapters", "rag_retrievers.evals"]
MODULES = sorted(
    m.name
    for package in PACKAGES
    for m in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")
    if m.name not in SKIP
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(
        importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0


def test_examples_exist() -> None:
    found = sum(
        doctest.testmod(importlib.import_module(n), report=False).attempted for n in MODULES
    )
    assert found >= 6
