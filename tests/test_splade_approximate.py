"""``Splade(search="approximate")`` with the real splade-tiny model: the conformance suite with
the approximate path forced on (``min_documents=0``) and with the default settings (a small
collection falls back to the exact index), settings in the config and repr, and the block index
saved with the collection, read back checked, or rebuilt when absent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from rag_retrievers.adapters.splade import Splade
from test_splade import corpus, splade_tiny

from rag_retrievers.base import Retriever
from rag_retrievers.engines.options import MilvusOptions
from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.sparse_blocks import ApproximateSearch
from rag_retrievers.index.storage import write_manifest
from rag_retrievers.records import Document
from rag_retrievers.testing import RetrieverConformance

ALWAYS = ApproximateSearch(min_documents=0)


class TestApproximateSpladeConformance(RetrieverConformance):
    """Every search goes through the block index, however small the collection."""

    def make_retriever(self) -> Retriever:
        return Splade(encoder=splade_tiny(), search=ALWAYS)


class TestApproximateSpladeDefaultConformance(RetrieverConformance):
    """``search="approximate"``: below ``min_documents`` the exact index answers."""

    def make_retriever(self) -> Retriever:
        return Splade(encoder=splade_tiny(), search="approximate")


def approximate_splade() -> Splade:
    splade = Splade(encoder=splade_tiny(), search=ALWAYS)
    splade.add(corpus())
    return splade


def test_the_approximate_path_answers() -> None:
    splade = approximate_splade()
    exact = Splade(encoder=splade_tiny())
    exact.add(corpus())
    assert splade._approximate is not None
    query = corpus()[3].text
    hits = splade.search(query, k=3)
    assert splade._approximate.blocks is not None  # built by the first search
    # approximate: the same best hit, and every score is the exact dot product
    assert hits[0].id == exact.search(query, k=1)[0].id == "doc-03"
    exact_scores = {h.id: h.score for h in exact.search(query, k=12)}
    assert [h.score for h in hits] == pytest.approx([exact_scores[h.id] for h in hits])


def test_config_and_repr_record_the_settings() -> None:
    assert "search" not in Splade(encoder=splade_tiny()).config()
    splade = Splade(encoder=splade_tiny(), search="approximate")
    assert splade.config()["search"] == "approximate"
    assert repr(splade) == "Splade(search='approximate')"
    custom = Splade(encoder=splade_tiny(), search={"query_terms": 4, "min_documents": 0})
    assert custom.search_settings == ApproximateSearch(query_terms=4, min_documents=0)
    assert custom.config()["search"]["query_terms"] == 4
    forced = Splade(encoder=splade_tiny(), search={"min_documents": 0})
    assert forced.config() == Splade(encoder=splade_tiny(), search=ALWAYS).config()


@pytest.mark.parametrize("search", ["fast", {"colour": 1}, {"heap_factor": 2.0}, 3])
def test_bad_search_settings_are_refused(search: object) -> None:
    with pytest.raises(InvalidInputError):
        Splade(encoder=splade_tiny(), search=search)  # type: ignore[arg-type]


def test_an_engine_answers_its_own_searches() -> None:
    with pytest.raises(InvalidInputError, match="engine"):
        Splade(encoder=splade_tiny(), search="approximate", engine=MilvusOptions("./milvus.db"))


def test_the_block_index_is_saved_and_read_back(tmp_path: Path) -> None:
    splade = approximate_splade()
    splade.delete(["doc-04"])
    queries = ["star explosion", "bread and yeast", "gene editing DNA"]
    before = [splade.search(q, k=5) for q in queries]
    splade.save(tmp_path / "c")
    files = {p.name for p in (tmp_path / "c").rglob("blocks*")}
    assert "blocks.json" in files
    assert "blocks_rows.npy" in files
    reopened = Splade.open(tmp_path / "c")
    assert reopened.search_settings == ALWAYS
    assert reopened._approximate is not None
    assert reopened._approximate.blocks is not None  # read, not rebuilt
    assert reopened._approximate.blocks.n_rows == len(corpus()) - 1
    for query, hits in zip(queries, before, strict=True):
        again = reopened.search(query, k=5)
        assert [h.id for h in again] == [h.id for h in hits]
        assert [h.score for h in again] == pytest.approx([h.score for h in hits])


def test_a_collection_saved_before_any_search_builds_its_blocks_on_open(tmp_path: Path) -> None:
    splade = approximate_splade()  # never searched: no block index to save
    splade.save(tmp_path / "c")
    assert not list((tmp_path / "c").rglob("blocks*"))
    reopened = Splade.open(tmp_path / "c")
    assert reopened.search(corpus()[5].text, k=1)[0].id == corpus()[5].id


def _data_folder(root: Path) -> Path:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return root / manifest["data"]


def test_damaged_blocks_are_refused_on_open(tmp_path: Path) -> None:
    splade = approximate_splade()
    splade.search("star", k=2)
    splade.save(tmp_path / "c")
    folder = _data_folder(tmp_path / "c")
    file = folder / "blocks_rows.npy"
    np.save(file, np.load(file) + 1000)
    # the manifest re-signed over the damaged file: the block index's own checks must refuse it
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["blocks_rows.npy"] = {
        "bytes": file.stat().st_size,
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
    }
    write_manifest(tmp_path / "c", manifest)
    with pytest.raises(CorruptCollectionError, match="approximate index"):
        Splade.open(tmp_path / "c")


def test_adds_and_deletes_after_the_build() -> None:
    splade = approximate_splade()
    splade.search("star", k=2)  # builds the block index
    splade.add([Document(id="new", text="Glaciers carve valleys over millennia.")])
    assert splade.search("glaciers valleys", k=1)[0].id == "new"  # from the tail
    splade.delete(["new"])
    assert "new" not in {h.id for h in splade.search("glaciers valleys", k=12)}
    hits = splade.search("bread", k=12, filter={"topic": "cook"})
    assert hits
    assert {h.document.metadata["topic"] for h in hits if h.document} == {"cook"}
