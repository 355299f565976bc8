"""A conformance test class for any Retriever, ours or a user's.

Subclass it in a pytest module and say how to build an empty retriever::

    from rag_retrievers.testing import RetrieverConformance

    class TestMyRetriever(RetrieverConformance):
        def make_retriever(self):
            return MyRetriever()

Every test writes its own small corpus; a retriever passes when it ranks, limits, filters,
persists, deletes and rejects bad input as the interface promises, and stays correct while one
thread adds and others search. Needs pytest.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

try:
    import pytest
except ImportError as exc:  # this module is for test suites; the library itself needs no pytest
    raise ImportError(
        "rag_retrievers.testing needs pytest: pip install 'rag-retrievers[test]'"
    ) from exc

from rag_retrievers.base import Retriever
from rag_retrievers.errors import (
    CorruptCollectionError,
    DuplicateIdError,
    FilterError,
    ForeignCollectionError,
    InvalidDocumentError,
    InvalidInputError,
    InvalidQueryError,
)
from rag_retrievers.filters import compile_filter
from rag_retrievers.index.storage import write_manifest
from rag_retrievers.records import Document, Hit

_TEXTS = [
    ("astro", "Telescopes observe distant galaxies and measure the redshift of their light.", 2019),
    (
        "astro",
        "A neutron star forms when a massive star collapses after a supernova explosion.",
        2021,
    ),
    ("astro", "Exoplanets are detected by the transit method as they dim their host star.", 2023),
    ("bio", "Enzymes catalyse biochemical reactions by lowering their activation energy.", 2018),
    (
        "bio",
        "Mitochondria produce ATP through oxidative phosphorylation in eukaryotic cells.",
        2020,
    ),
    ("bio", "CRISPR gene editing cuts DNA at sequences matched by a guide RNA.", 2022),
    ("cook", "Knead the bread dough until it is smooth, then let it rise for an hour.", 2017),
    ("cook", "Caramelised onions need low heat and patience to turn sweet and brown.", 2020),
    ("cook", "A sourdough starter is a culture of wild yeast and lactic acid bacteria.", 2024),
    ("sport", "The marathon runner kept a steady pace over the forty-two kilometres.", 2016),
    ("sport", "In tennis a tie-break decides a set that reaches six games all.", 2021),
    ("sport", "The goalkeeper saved the penalty kick in the final minute of the match.", 2023),
]


class RetrieverConformance:
    """Behaviour every Retriever must show. Override ``make_retriever``; the rest is shared."""

    #: score tolerance for results that should be identical (round trips, repeats)
    score_rel_tolerance: float = 1e-5

    def make_retriever(self) -> Retriever:
        """A new, empty retriever under test."""
        raise NotImplementedError("subclasses return a new, empty retriever")

    def documents(self) -> list[Document]:
        """The corpus the tests index: short texts on four topics, with metadata."""
        return [
            Document(
                id=f"doc-{i:02d}",
                text=text,
                metadata={"topic": topic, "year": year, "tags": [topic, f"y{year}"]},
            )
            for i, (topic, text, year) in enumerate(_TEXTS)
        ]

    # -- helpers -------------------------------------------------------------------------------

    @pytest.fixture
    def retriever(self) -> Retriever:
        retriever = self.make_retriever()
        retriever.add(self.documents())
        return retriever

    def reopen(self, retriever: Retriever, path: Path) -> Retriever:
        """Open what ``retriever`` saved at ``path``, on its engine if it has one: a manifest
        never names the engine, the caller does (here, the retriever's own engine options)."""
        engine = retriever.engine
        if engine is None:
            return type(retriever).open(path)
        return type(retriever).open(path, engine=engine.resolved(type(retriever).name))

    def assert_same_hits(self, got: list[Hit], expected: list[Hit]) -> None:
        assert [h.id for h in got] == [h.id for h in expected]
        assert [h.rank for h in got] == [h.rank for h in expected]
        assert [h.score for h in got] == pytest.approx(
            [h.score for h in expected], rel=self.score_rel_tolerance, abs=1e-6
        )

    @staticmethod
    def metadata_of(hit: Hit) -> dict[str, Any]:
        assert hit.document is not None, f"hit {hit.id!r} carries no document"
        return hit.document.metadata

    def queries(self) -> list[str]:
        return ["star explosion", "bread and yeast", "gene editing DNA", "tennis set", "energy"]

    # -- ranking and k -------------------------------------------------------------------------

    def test_len_counts_documents(self, retriever: Retriever) -> None:
        assert len(retriever) == len(self.documents())

    def test_empty_retriever_returns_no_hits(self) -> None:
        assert self.make_retriever().search("anything at all", k=5) == []

    def test_add_nothing_is_a_no_op(self, retriever: Retriever) -> None:
        retriever.add([])
        assert len(retriever) == len(self.documents())

    def test_hits_are_ranked_best_first(self, retriever: Retriever) -> None:
        stored = {d.id: d for d in self.documents()}
        for query in self.queries():
            hits = retriever.search(query, k=len(stored))
            assert hits, query
            assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            assert len({h.id for h in hits}) == len(hits)
            for hit in hits:
                assert hit.document == stored[hit.id]
                assert hit.source

    def test_a_documents_own_text_finds_it_first(self, retriever: Retriever) -> None:
        for doc in self.documents():
            assert retriever.search(doc.text, k=3)[0].id == doc.id

    @pytest.mark.parametrize("k", [1, 2, 5])
    def test_k_limits_the_hits(self, retriever: Retriever, k: int) -> None:
        hits = retriever.search("star", k=k)
        assert 1 <= len(hits) <= k
        assert hits[0].id == retriever.search("star", k=len(self.documents()))[0].id

    def test_k_larger_than_the_collection(self, retriever: Retriever) -> None:
        n = len(self.documents())
        hits = retriever.search("the star", k=1000)
        assert 0 < len(hits) <= n
        assert len({h.id for h in hits}) == len(hits)
        assert {"doc-01", "doc-02"} <= {h.id for h in hits}  # the two texts that say "star"
        # k past the collection changes nothing: the same hits as a k that covers every document
        self.assert_same_hits(hits, retriever.search("the star", k=n))

    def test_search_is_deterministic(self, retriever: Retriever) -> None:
        for query in self.queries():
            self.assert_same_hits(retriever.search(query, k=5), retriever.search(query, k=5))

    def test_search_batch_equals_search(self, retriever: Retriever) -> None:
        batch = retriever.search_batch(self.queries(), k=4)
        assert len(batch) == len(self.queries())
        for query, hits in zip(self.queries(), batch, strict=True):
            self.assert_same_hits(hits, retriever.search(query, k=4))
        assert retriever.search_batch([], k=4) == []

    def test_asearch_equals_search(self, retriever: Retriever) -> None:
        query = self.queries()[0]

        async def both() -> tuple[list[Hit], list[list[Hit]]]:
            return await retriever.asearch(query, k=3), await retriever.asearch_batch([query], k=3)

        single, batch = asyncio.run(both())
        self.assert_same_hits(single, retriever.search(query, k=3))
        self.assert_same_hits(batch[0], single)

    # -- filters -------------------------------------------------------------------------------

    def test_filter_by_equality(self, retriever: Retriever) -> None:
        hits = retriever.search("star energy bread", k=12, filter={"topic": "bio"})
        assert hits
        assert {self.metadata_of(h)["topic"] for h in hits} == {"bio"}

    def test_filter_by_in_and_range(self, retriever: Retriever) -> None:
        spec = {"topic": {"$in": ["astro", "sport"]}, "year": {"$gte": 2021}}
        hits = retriever.search("star match set", k=12, filter=spec)
        assert hits
        check = compile_filter(spec)
        assert all(check.matches(self.metadata_of(h)) for h in hits)

    def test_filter_excludes_the_best_match(self, retriever: Retriever) -> None:
        target, bread = self.documents()[0], self.documents()[6]
        query = f"{target.text} Bread dough."
        assert retriever.search(query, k=1)[0].id == target.id
        hits = retriever.search(query, k=5, filter={"topic": {"$ne": "astro"}})
        assert hits
        assert hits[0].id == bread.id  # the best match the filter lets through
        assert "astro" not in {self.metadata_of(h)["topic"] for h in hits}

    def test_filter_on_list_field(self, retriever: Retriever) -> None:
        hits = retriever.search("star", k=12, filter={"tags": "y2021"})
        assert hits
        assert all(self.metadata_of(h)["year"] == 2021 for h in hits)

    def test_unknown_filter_field_is_an_error(self, retriever: Retriever) -> None:
        with pytest.raises(FilterError, match="colour"):
            retriever.search("star", k=3, filter={"colour": "red"})

    def test_unknown_filter_operator_is_an_error(self, retriever: Retriever) -> None:
        with pytest.raises(FilterError, match=r"\$like"):
            retriever.search("star", k=3, filter={"topic": {"$like": "as%"}})

    # -- writes --------------------------------------------------------------------------------

    def test_add_with_an_existing_id_replaces(self, retriever: Retriever) -> None:
        new = Document(
            id="doc-00", text="Volcanic eruptions eject lava and ash.", metadata={"topic": "geo"}
        )
        retriever.add([new])
        assert len(retriever) == len(self.documents())
        hit = retriever.search("volcanic lava ash eruptions", k=1)[0]
        assert hit.id == "doc-00"
        assert hit.document == new
        assert "doc-00" not in {h.id for h in retriever.search("galaxies redshift telescopes", k=3)}

    def test_delete_removes_documents(self, retriever: Retriever) -> None:
        gone = ["doc-01", "doc-05"]
        assert retriever.delete(gone) == 2
        assert len(retriever) == len(self.documents()) - 2
        for doc in self.documents():
            if doc.id in gone:
                assert doc.id not in {h.id for h in retriever.search(doc.text, k=12)}
        assert retriever.delete(["doc-01", "no-such-id"]) == 0

    def test_delete_takes_a_list(self, retriever: Retriever) -> None:
        with pytest.raises(InvalidInputError):
            retriever.delete("doc-01")  # a str is an Iterable[str], refused at run time

    def test_documents_can_be_added_again_after_delete(self, retriever: Retriever) -> None:
        doc = self.documents()[4]
        retriever.delete([doc.id])
        retriever.add([doc])
        assert len(retriever) == len(self.documents())
        assert retriever.search(doc.text, k=1)[0].id == doc.id

    def test_langchain_documents_are_accepted(self) -> None:
        retriever = self.make_retriever()
        retriever.add([d.to_langchain() for d in self.documents()])
        assert len(retriever) == len(self.documents())
        assert retriever.search(self.documents()[3].text, k=1)[0].id == self.documents()[3].id

    # -- persistence ---------------------------------------------------------------------------

    def test_save_and_open_give_identical_results(
        self, retriever: Retriever, tmp_path: Path
    ) -> None:
        retriever.delete(["doc-07"])
        retriever.save(tmp_path / "collection")
        reopened = self.reopen(retriever, tmp_path / "collection")
        assert len(reopened) == len(retriever)
        for query in self.queries():
            self.assert_same_hits(reopened.search(query, k=6), retriever.search(query, k=6))
        hit = reopened.search(self.documents()[2].text, k=1)[0]
        assert hit.document == self.documents()[2]

    def test_reopened_collection_keeps_working(self, retriever: Retriever, tmp_path: Path) -> None:
        retriever.save(tmp_path / "c")
        reopened = self.reopen(retriever, tmp_path / "c")
        reopened.delete(["doc-00"])
        reopened.add(
            [
                Document(
                    id="new",
                    text="Glaciers carve valleys over millennia.",
                    metadata={"topic": "geo"},
                )
            ]
        )
        reopened.save()
        again = self.reopen(retriever, tmp_path / "c")
        assert len(again) == len(self.documents())
        assert again.search("glaciers valleys", k=1)[0].id == "new"
        assert "doc-00" not in {h.id for h in again.search(self.documents()[0].text, k=12)}

    def test_corrupt_manifest_is_refused(self, retriever: Retriever, tmp_path: Path) -> None:
        retriever.save(tmp_path / "c")
        (tmp_path / "c" / "manifest.json").write_text("{ not json", encoding="utf-8")
        with pytest.raises(CorruptCollectionError):
            type(retriever).open(tmp_path / "c")

    def test_manifest_without_its_data_is_refused(
        self, retriever: Retriever, tmp_path: Path
    ) -> None:
        retriever.save(tmp_path / "c")
        manifest = json.loads((tmp_path / "c" / "manifest.json").read_text(encoding="utf-8"))
        manifest["data"] = "gen-999999"
        write_manifest(tmp_path / "c", manifest)  # re-signed: the data check must refuse it
        with pytest.raises(CorruptCollectionError):
            type(retriever).open(tmp_path / "c")

    def test_foreign_directory_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "notes.txt").write_text("not a collection", encoding="utf-8")
        with pytest.raises(ForeignCollectionError):
            type(self.make_retriever()).open(tmp_path)
        with pytest.raises(ForeignCollectionError):
            self.make_retriever().save(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]

    # -- concurrency ---------------------------------------------------------------------------

    def test_searches_from_threads_while_another_adds(self, retriever: Retriever) -> None:
        extra = [
            Document(
                id=f"extra-{i}",
                text=f"Extra note number {i} about comets and orbits.",
                metadata={"topic": "astro", "year": 2000 + i},
            )
            for i in range(24)
        ]
        errors: list[BaseException] = []
        done = threading.Event()

        def search_loop() -> None:
            try:
                while not done.is_set():
                    for query in self.queries():
                        hits = retriever.search(query, k=5)
                        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
                        assert all(h.document is not None and h.document.id == h.id for h in hits)
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        threads = [threading.Thread(target=search_loop) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for start in range(0, len(extra), 4):
                retriever.add(extra[start : start + 4])
        finally:
            done.set()
            for t in threads:
                t.join(timeout=60)
        assert not errors, errors[0]
        assert len(retriever) == len(self.documents()) + len(extra)
        assert retriever.search("comets orbits extra note number 7", k=3)

    # -- bad input -----------------------------------------------------------------------------

    @pytest.mark.parametrize("query", ["", "   ", None, 42, b"bytes"])
    def test_bad_query_is_refused(self, retriever: Retriever, query: object) -> None:
        with pytest.raises(InvalidQueryError):
            retriever.search(query, k=3)  # type: ignore[arg-type]

    @pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
    def test_bad_k_is_refused(self, retriever: Retriever, k: object) -> None:
        with pytest.raises(InvalidInputError):
            retriever.search("star", k=k)  # type: ignore[arg-type]

    def test_search_batch_takes_a_list(self, retriever: Retriever) -> None:
        with pytest.raises(InvalidInputError):
            retriever.search_batch("star", k=3)  # a str is a Sequence[str], refused at run time
        with pytest.raises(InvalidQueryError):
            retriever.search_batch(["star", ""], k=3)

    def test_duplicate_ids_in_one_batch_change_nothing(self, retriever: Retriever) -> None:
        before = retriever.search(self.documents()[0].text, k=3)
        batch = [
            Document(id="fresh", text="Something new."),
            Document(id="doc-00", text="Overwritten text."),
            Document(id="fresh", text="Something newer."),
        ]
        with pytest.raises(DuplicateIdError, match="fresh"):
            retriever.add(batch)
        assert len(retriever) == len(self.documents())
        self.assert_same_hits(retriever.search(self.documents()[0].text, k=3), before)

    def test_invalid_document_changes_nothing(self, retriever: Retriever) -> None:
        with pytest.raises(InvalidDocumentError):
            retriever.add([{"id": "ok", "text": "fine"}, {"text": "no id"}])
        with pytest.raises(InvalidDocumentError):
            retriever.add([{"id": "nested", "text": "x", "metadata": {"a": {"b": 1}}}])
        assert len(retriever) == len(self.documents())
        assert "ok" not in {h.id for h in retriever.search("fine", k=12)}
