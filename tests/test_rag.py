"""The RAG pipeline with scripted generators: packing into a budget, numbering, citation
parsing, the not-found checks, streaming, async and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from rag_retrievers import BM25, Document
from rag_retrievers.app.rag import (
    RAG,
    estimate_tokens,
    overlap_citations,
    pack_passages,
    parse_citations,
    says_not_found,
)
from rag_retrievers.errors import InvalidInputError, InvalidQueryError
from rag_retrievers.generators import NOT_FOUND, GeneratorBase, GeneratorTimeoutError, RagPrompt
from rag_retrievers.records import Hit

DOCS = [
    Document(id="eiffel", text="The Eiffel Tower is in Paris and was finished in 1889."),
    Document(id="colosseum", text="The Colosseum is an amphitheatre in Rome."),
    Document(id="bigben", text="Big Ben is the bell of the clock tower in London."),
]


class Scripted(GeneratorBase):
    """Answers with a fixed text and records the messages it was given."""

    def __init__(self, text: str, *, tokens_per_word: bool = False) -> None:
        self.text = text
        self.calls: list[Any] = []
        if tokens_per_word:
            self.count_tokens = lambda s: len(s.split())  # type: ignore[method-assign]

    def generate(self, prompt_or_messages: Any, **params: Any) -> str:
        self.calls.append((prompt_or_messages, params))
        return self.text

    def stream(self, prompt_or_messages: Any, **params: Any) -> Iterator[str]:
        self.calls.append((prompt_or_messages, params))
        words = self.text.split(" ")
        return iter([w + " " for w in words[:-1]] + words[-1:])


@pytest.fixture
def bm25() -> BM25:
    index = BM25()
    index.add(DOCS)
    return index


def _user(gen: Scripted) -> str:
    return gen.calls[-1][0][-1]["content"]


def test_cited_answer_maps_numbers_to_ids(bm25: BM25) -> None:
    gen = Scripted("It was finished in 1889 [1].")
    answer = RAG(bm25, gen, k=3).ask("When was the Eiffel Tower finished?")
    assert answer.text == "It was finished in 1889 [1]."
    assert answer.citations == ["eiffel"]
    assert answer.contexts[0].id == "eiffel"
    user = _user(gen)
    assert '<passage id="1">\nThe Eiffel Tower is in Paris' in user
    assert "Question: When was the Eiffel Tower finished?" in user
    assert gen.calls[-1][0][0]["role"] == "system"


def test_citations_outside_the_context_are_dropped(bm25: BM25) -> None:
    gen = Scripted("Rome [2], Paris [1], and [7].")
    answer = RAG(bm25, gen, k=2).ask("Eiffel Tower Colosseum")
    numbered = [hit.id for hit in answer.contexts]
    assert len(numbered) == 2
    assert answer.citations == [numbered[1], numbered[0]]


def test_not_found_when_nothing_is_retrieved(bm25: BM25) -> None:
    gen = Scripted("should not be called")
    answer = RAG(bm25, gen).ask("quantum chromodynamics")
    assert (answer.text, answer.citations, answer.contexts) == (NOT_FOUND, [], [])
    assert gen.calls == []


def test_not_found_below_min_score(bm25: BM25) -> None:
    gen = Scripted("x [1]")
    assert RAG(bm25, gen, min_score=1e6).ask("Eiffel").text == NOT_FOUND
    assert gen.calls == []


@pytest.mark.parametrize(
    "said",
    ["Not found in the documents.", "The passages do not contain this information.", "  "],
)
def test_not_found_when_the_model_says_so(bm25: BM25, said: str) -> None:
    answer = RAG(bm25, Scripted(said)).ask("Who built the Eiffel Tower?")
    assert answer.text == NOT_FOUND
    assert answer.citations == []
    assert answer.contexts  # what the model was shown stays inspectable


def test_uncited_answer_is_attributed_by_word_overlap(bm25: BM25) -> None:
    gen = Scripted("It stands in Paris and was finished in 1889.")
    answer = RAG(bm25, gen, k=3).ask("Where is the Eiffel Tower?")
    assert answer.citations == ["eiffel"]
    assert answer.citations_from == "overlap"
    cited = RAG(bm25, Scripted("Paris [1]."), k=3).ask("Where is the Eiffel Tower?")
    assert cited.citations_from == "model"


def test_an_unsupported_uncited_answer_is_not_found(bm25: BM25) -> None:
    # nothing in the passages supports the answer, and the model cited nothing
    invented = Scripted("It was designed by aliens from Mars in 1066.")
    answer = RAG(bm25, invented).ask("Who designed the Eiffel Tower?")
    assert (answer.text, answer.citations, answer.citations_from) == (NOT_FOUND, [], None)
    assert answer.contexts
    kept = RAG(bm25, invented, require_citations=False).ask("Who designed the Eiffel Tower?")
    assert (kept.text, kept.citations) == ("It was designed by aliens from Mars in 1066.", [])
    bare = RAG(bm25, invented, attribute_uncited=False).ask("Where is the Eiffel Tower?")
    assert bare.text == NOT_FOUND
    grounded = Scripted("It stands in Paris.")
    no_overlap = RAG(bm25, grounded, attribute_uncited=False).ask("Where is the Eiffel Tower?")
    assert no_overlap.text == NOT_FOUND  # only the model's own markers count


def test_packing_respects_the_budget_with_the_generators_tokenizer() -> None:
    hits = [
        Hit(id=f"d{i}", score=1.0, rank=i, document=Document(id=f"d{i}", text=text))
        for i, text in enumerate(["one two three four", "five " * 30, "six seven"], 1)
    ]
    words = lambda s: len(s.split())  # noqa: E731
    passages = pack_passages(hits, budget=14, count=words)
    # '<passage id="1">\none two three four\n</passage>' = 7 words + 1 newline; the 30-word hit
    # is skipped; the last (6 words + 1) fits
    assert [(p.number, p.hit.id) for p in passages] == [(1, "d1"), (2, "d3")]
    assert sum(p.tokens for p in passages) <= 14


def test_a_budget_smaller_than_the_best_passage_truncates_it() -> None:
    long = Document(id="long", text=" ".join(f"w{i}" for i in range(100)))
    hits = [Hit(id="long", score=2.0, rank=1, document=long)]
    (passage,) = pack_passages(hits, budget=20, count=lambda s: len(s.split()))
    assert passage.truncated
    assert passage.text.endswith(" ...")
    assert passage.tokens <= 20
    assert passage.text.startswith("w0 w1 w2")


def test_rag_contexts_show_the_truncated_text(bm25: BM25) -> None:
    index = BM25()
    index.add([Document(id="long", text="tower " + "filler " * 300)])
    answer = RAG(index, Scripted("tall [1]"), max_context_tokens=40).ask("tower")
    (context,) = answer.contexts
    assert context.document is not None
    assert context.document.text.endswith("...")
    assert estimate_tokens(context.document.text) <= 40
    assert answer.citations == ["long"]


def test_context_window_caps_the_budget(bm25: BM25) -> None:
    gen = Scripted("x [1]", tokens_per_word=True)
    gen.context_window = 60  # type: ignore[attr-defined]
    with pytest.raises(InvalidInputError, match="context window"):
        RAG(bm25, gen, generate_params={"max_tokens": 50}).ask("Eiffel Tower")


def test_bad_input(bm25: BM25) -> None:
    rag = RAG(bm25, Scripted("x"))
    with pytest.raises(InvalidQueryError):
        rag.ask("")
    with pytest.raises(InvalidQueryError):
        rag.ask("   ")
    with pytest.raises(InvalidInputError, match="max_context_tokens"):
        RAG(bm25, Scripted("x"), max_context_tokens=4)
    with pytest.raises(InvalidInputError, match="k must be"):
        RAG(bm25, Scripted("x"), k=0)
    with pytest.raises(InvalidInputError, match="retriever"):
        RAG("bm25", Scripted("x"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown generation parameter"):
        RAG(bm25, Scripted("x"), generate_params={"max_token": 3})
    with pytest.raises(InvalidInputError, match="context"):
        RAG(bm25, Scripted("x"), prompt="no placeholders")


def test_a_generator_timeout_surfaces_as_an_error(bm25: BM25) -> None:
    class Slow(GeneratorBase):
        def generate(self, prompt_or_messages: Any, **params: Any) -> str:
            raise GeneratorTimeoutError("took too long")

    with pytest.raises(GeneratorTimeoutError):
        RAG(bm25, Slow()).ask("Eiffel Tower")


def test_custom_prompt_and_params(bm25: BM25) -> None:
    gen = Scripted("Paris [1]")
    prompt = RagPrompt(system="", user="Q: {question}\n{context}")
    RAG(bm25, gen, prompt=prompt, generate_params={"max_tokens": 9}).ask("Eiffel")
    messages, params = gen.calls[-1]
    assert [m["role"] for m in messages] == ["user"]
    assert messages[0]["content"].startswith('Q: Eiffel\n<passage id="1">\nThe Eiffel Tower')
    assert params == {"max_tokens": 9}


def test_stream_then_answer(bm25: BM25) -> None:
    gen = Scripted("Built in 1889 [1].")
    streamed = RAG(bm25, gen).stream("When was the Eiffel Tower finished?")
    assert streamed.contexts[0].id == "eiffel"
    with pytest.raises(InvalidInputError, match="read to the end"):
        _ = streamed.answer
    pieces = list(streamed)
    assert len(pieces) > 1
    assert "".join(pieces) == "Built in 1889 [1]."
    assert streamed.answer.citations == ["eiffel"]


def test_stream_not_found_without_hits(bm25: BM25) -> None:
    streamed = RAG(bm25, Scripted("x")).stream("quantum chromodynamics")
    assert list(streamed) == [NOT_FOUND]
    assert streamed.answer.text == NOT_FOUND


def test_aask(bm25: BM25) -> None:
    answer = asyncio.run(RAG(bm25, Scripted("Rome [1].")).aask("Colosseum amphitheatre"))
    assert answer.citations == ["colosseum"]


def test_per_call_k(bm25: BM25) -> None:
    gen = Scripted("x [1]")
    rag = RAG(bm25, gen, k=3)
    assert len(rag.ask("tower", k=1).contexts) == 1
    assert len(rag.ask("tower").contexts) == 2


def test_parse_citations_forms() -> None:
    assert parse_citations("[1][3] and [2 , 3]", 3) == [1, 3, 2]
    assert parse_citations("[1-3]", 5) == [1, 2, 3]
    assert parse_citations("[0] [x] [12]", 5) == []
    assert parse_citations("no citations", 5) == []


def test_says_not_found() -> None:
    assert says_not_found("The answer is not found in the documents provided.")
    assert not says_not_found("The documents describe Paris [1].")


def test_overlap_citations_by_hand() -> None:
    passages = ["Rome is the capital of Italy.", "Paris is the capital of France.", "Paris, Texas."]
    # answer words not in the question: paris, franc -> passage 2 has both, passage 3 one of two
    assert overlap_citations("Paris, France.", passages, "capital?") == [2, 3]
    assert overlap_citations("Paris, France.", passages, "capital?", threshold=0.75) == [2]
    # every answer word is in the question: all words count
    assert overlap_citations("capital", passages, "capital") == [1, 2]
    assert overlap_citations("the of", passages) == []
    # framing words don't dilute the support: only "nectar" is new
    nectar = ["Honey is made by bees from the nectar of flowers."]
    assert overlap_citations("The answer to the question is: nectar.", nectar, "honey?") == [1]
