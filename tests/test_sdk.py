"""The one import path: everything a user needs from ``rag_retrievers``, loaded on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rag_retrievers

HEAVY = ["torch", "transformers", "sentence_transformers", "chromadb", "langchain_core"]


PROBE = f"""
import json, sys
def heavy():
    return [m for m in {HEAVY!r} if m in sys.modules]
steps = []
import rag_retrievers
steps.append(heavy())
from rag_retrievers import BM25, Dense, Splade, ColBERT, Hybrid, PRF, RAG, Document, Hit
from rag_retrievers import open_collection
steps.append(heavy())
from rag_retrievers import LangChainRetriever
steps.append(heavy())
print(json.dumps(steps))
"""


def test_the_package_and_its_retrievers_import_nothing_heavy() -> None:
    # one fresh interpreter, three steps: the package, the retriever names, the LangChain names
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    package, retrievers, langchain = json.loads(out.stdout.splitlines()[-1])
    assert package == []
    assert retrievers == []
    assert langchain == ["langchain_core"]


@pytest.mark.parametrize("name", rag_retrievers.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(rag_retrievers, name)
    assert value is not None
    if isinstance(value, type):
        assert value.__doc__, f"{name} has no docstring"


def test_lazy_names_are_the_adapter_classes() -> None:
    from rag_retrievers.adapters.hybrid import Hybrid

    from rag_retrievers.langchain_retriever import LangChainRetriever

    assert rag_retrievers.Hybrid is Hybrid
    assert rag_retrievers.LangChainRetriever is LangChainRetriever


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Colbertt"):
        rag_retrievers.Colbertt  # noqa: B018
