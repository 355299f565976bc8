import pytest

from rag_retrievers import BM25, Document, UnknownNameError, create_retriever
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.testing import RetrieverConformance


class TestBM25Conformance(RetrieverConformance):
    def make_retriever(self) -> BM25:
        return BM25()


class TestOkapiConformance(RetrieverConformance):
    def make_retriever(self) -> BM25:
        return BM25(variant="okapi", k1=1.2, b=0.75)


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="lucene, okapi"):
        BM25(variant="bm25+")


@pytest.mark.parametrize(
    "kwargs", [{"k1": -1}, {"b": 1.5}, {"k1": float("nan")}, {"dtype": "int8"}]
)
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        BM25(**kwargs)


def test_registry_creates_bm25_and_lists_names_on_error() -> None:
    assert isinstance(create_retriever("bm25", k1=1.2), BM25)
    with pytest.raises(UnknownNameError, match="bm25"):
        create_retriever("bm26")


def test_query_weights_are_count_times_idf() -> None:
    bm25 = BM25()
    bm25.add([Document(id="a", text="apple pie"), Document(id="b", text="apple tart")])
    weights = bm25.query_weights("apples and pie pie")
    idf = bm25.idf()
    ids = bm25._index.term_ids
    assert weights == pytest.approx({"appl": idf[ids["appl"]], "pie": 2 * idf[ids["pie"]]})


def test_repr_reads_as_construction() -> None:
    assert repr(BM25(k1=1.2)) == "BM25(k1=1.2)"  # only what differs from the defaults
    assert repr(BM25()) == "BM25()"


def test_filters_see_documents_added_and_deleted_after_a_filtered_search() -> None:
    bm25 = BM25()
    bm25.add([Document(id="a", text="red apple", metadata={"c": "x"})])
    assert [h.id for h in bm25.search("apple", filter={"c": "x"})] == ["a"]
    bm25.add([Document(id="b", text="green apple", metadata={"c": "x"})])
    assert {h.id for h in bm25.search("apple", filter={"c": "x"})} == {"a", "b"}
    bm25.delete(["a"])
    assert [h.id for h in bm25.search("apple", filter={"c": "x"})] == ["b"]


def test_changing_a_hits_langchain_metadata_leaves_the_index_alone() -> None:
    bm25 = BM25()
    bm25.add([Document(id="a", text="red apple", metadata={"tags": ["fruit"]})])
    lc = bm25.search("apple")[0].to_langchain()
    lc.metadata["tags"].append("changed")
    assert bm25.get("a").metadata == {"tags": ["fruit"]}


@pytest.mark.parametrize("kwargs", [{"k1": True}, {"epsilon": "x"}, {"analyzer": "english"}])
def test_more_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError):
        BM25(**kwargs)


def test_a_save_writes_the_state_of_its_start(tmp_path) -> None:
    # the files are written outside the lock from a snapshot: a write racing the save must
    # not leak into it
    bm25 = BM25()
    bm25.add([Document(id="a", text="red apple")])
    write = bm25._snapshot()
    bm25.add([Document(id="b", text="green apple")])
    bm25.delete(["a"])
    folder = tmp_path / "snap"
    folder.mkdir()
    write(folder)
    assert (folder / "documents.jsonl").read_text().count("\n") == 1
    assert '"id": "a"' in (folder / "documents.jsonl").read_text()
