"""Retrieval-augmented generation: retrieve, pack passages into a token budget, ask for a cited
answer, map the citations back to document ids.

>>> from rag_retrievers import BM25, Document
>>> from rag_retrievers.generators import GeneratorBase
>>> class FirstPassage(GeneratorBase):  # a stand-in for an LLM, for the example
...     def generate(self, messages, **params):
...         return "BM25 is a ranking function [1]."
>>> bm25 = BM25()
>>> bm25.add([Document(id="bm25", text="BM25 is a ranking function used by search engines."),
...           Document(id="rrf", text="Reciprocal rank fusion combines rankings.")])
>>> answer = RAG(bm25, FirstPassage(), k=2).ask("What is BM25?")
>>> answer.text, answer.citations
('BM25 is a ranking function [1].', ['bm25'])

With a real model: ``RAG(bm25, LlamaCpp("smollm2"))`` or ``RAG(bm25, "http://127.0.0.1:8000")``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rag_retrievers.errors import InvalidInputError, check_k, check_query
from rag_retrievers.generators.base import CountsTokens, Generator, check_params
from rag_retrievers.generators.prompts import (
    CITATION,
    DEFAULT_PROMPT,
    NOT_FOUND,
    RagPrompt,
    format_passage,
)
from rag_retrievers.records import Answer, Hit

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever
    from rag_retrievers.filters import Filter

#: the smallest context budget accepted: room for a passage number and a few words
MIN_CONTEXT_TOKENS = 16
#: tokens kept free for the chat template's role markers around the messages
TEMPLATE_MARGIN = 32
CHARS_PER_TOKEN = 4

_NOT_FOUND_SAID = re.compile(
    r"\b(not found in the (documents?|passages?|context)|"
    r"(passages?|documents?|context) (do|does) not (contain|answer|mention|say))\b",
    re.IGNORECASE,
)


def estimate_tokens(text: str) -> int:
    """Token count estimate for generators without a tokenizer: about 4 characters per token,
    the usual figure for English text under BPE tokenizers (it overcounts short common words
    and undercounts numbers and rare words).

    >>> estimate_tokens("twelve chars")
    3
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def token_counter(generator: object) -> Callable[[str], int]:
    """The generator's own token counter when it has one, else :func:`estimate_tokens`."""
    return generator.count_tokens if isinstance(generator, CountsTokens) else estimate_tokens


@dataclass(frozen=True)
class Passage:
    """A hit as the model sees it: its number, the (possibly truncated) text, its token count."""

    number: int
    hit: Hit
    text: str
    tokens: int
    truncated: bool = False

    def render(self) -> str:
        return format_passage(self.number, self.text)


def _hit_text(hit: Hit) -> str:
    doc = hit.document
    if doc is None:
        return ""
    title = doc.metadata.get("title")
    if isinstance(title, str) and title.strip() and not doc.text.startswith(title):
        return f"{title.strip()}. {doc.text}"
    return doc.text


def _truncate(text: str, number: int, budget: int, count: Callable[[str], int]) -> str | None:
    """The longest word prefix of ``text`` whose rendered passage fits ``budget`` tokens."""
    words = text.split()
    lo, hi = 0, len(words)  # invariant: words[:lo] fits (or lo == 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(format_passage(number, " ".join(words[:mid]) + " ...")) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]) + " ..." if lo else None


def pack_passages(
    hits: list[Hit], budget: int, count: Callable[[str], int] = estimate_tokens
) -> list[Passage]:
    """Number hits 1, 2... in rank order while their rendered text (:func:`format_passage`:
    ``<passage id="1">...</passage>``, delimiters a document cannot forge) fits ``budget`` tokens
    (counted with ``count``); a hit that does not fit is skipped, so a shorter later one may
    still fit. Fallback: if not even the best hit fits, it is truncated to the budget (a word
    prefix ending in "..."). Hits without a document are skipped.

    >>> from rag_retrievers.records import Document, Hit
    >>> texts = [("a", "short text"), ("b", "x " * 40), ("c", "tiny")]
    >>> hits = [Hit(id=i, score=1.0, rank=r, document=Document(id=i, text=t))
    ...         for r, (i, t) in enumerate(texts, 1)]
    >>> [(p.number, p.hit.id) for p in pack_passages(hits, budget=20)]
    [(1, 'a'), (2, 'c')]
    >>> [(p.hit.id, p.truncated) for p in pack_passages(hits[1:], budget=20)]
    [('b', True)]
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InvalidInputError(f"budget must be an int >= 1, got {budget!r}")
    passages: list[Passage] = []
    left = budget
    for hit in hits:
        text = _hit_text(hit)
        if not text.strip():
            continue
        number = len(passages) + 1
        tokens = count(format_passage(number, text)) + 1  # +1: the newline between passages
        if tokens <= left:
            passages.append(Passage(number, hit, text, tokens))
            left -= tokens
        elif not passages:
            cut = _truncate(text, number, left - 1, count)
            if cut is None:
                continue
            passages.append(Passage(number, hit, cut, count(format_passage(number, cut)) + 1, True))
            left -= passages[-1].tokens
    return passages


def parse_citations(text: str, n_passages: int) -> list[int]:
    """Passage numbers cited as [1], [2, 3], [1-2] or [1][3], in order of first mention. Only
    the passages given count: a number outside 1..n_passages, or a range reaching outside it, is
    not a citation (the model invented it, or copied a year). The passages cannot plant a
    marker: :func:`format_passage` writes their own ``[n]`` as ``(n)``.

    >>> parse_citations("A [2]. B [1, 3]. C [2-4] [9] [1-9].", n_passages=4)
    [2, 1, 3, 4]
    """
    cited: dict[int, None] = {}
    for match in CITATION.finditer(text):
        body = match.group(1)
        for part in re.split(r"\s*(?:[,;]|and)\s*", body):
            lo_hi = [int(n) for n in re.split(r"\s*[-–]\s*", part)]
            if not all(1 <= n <= n_passages for n in lo_hi):
                continue
            if len(lo_hi) == 2:
                lo, hi = lo_hi
                numbers: list[int] | range = range(lo, hi + 1) if 0 < hi - lo < 20 else [lo, hi]
            else:
                numbers = lo_hi
            for n in numbers:
                cited.setdefault(n)
    return list(cited)


def says_not_found(text: str) -> bool:
    """Whether a model's answer says the passages lack the answer (or is empty).

    >>> says_not_found("Not found in the documents."), says_not_found("Paris [1].")
    (True, False)
    """
    return not text.strip() or bool(_NOT_FOUND_SAID.search(text))


#: words that frame an answer rather than carry it ("The answer to the question is: ...")
ANSWER_FRAMING = (
    "answer answers question questions passage passages document documents context text "
    "according based provided given states stated mentions mentioned says"
)


def overlap_citations(
    answer: str, passages: list[str], question: str = "", threshold: float = 0.5
) -> list[int]:
    """Passage numbers (1-based) that hold at least ``threshold`` of the answer's content words
    (stemmed; stopwords and :data:`ANSWER_FRAMING` dropped; words of the question don't count
    unless nothing else is left), most supporting first: a citation for an answer whose model
    cited nothing.

    >>> overlap_citations("It is in Paris, France.", ["Rome is in Italy.", "Paris is in France."])
    [2]
    """
    from rag_retrievers.encoders.analysis import Analyzer

    analyzer = Analyzer()
    words = set(analyzer.analyze(answer)) - set(analyzer.analyze(ANSWER_FRAMING))
    new = words - set(analyzer.analyze(question))
    words = new or words
    if not words:
        return []
    support = [len(words & set(analyzer.analyze(text))) / len(words) for text in passages]
    ranked = sorted(range(len(passages)), key=lambda i: -support[i])
    return [i + 1 for i in ranked if support[i] >= threshold]


class RAG:
    """Answer questions from a retriever's documents with a generator, citing document ids.

    ``k`` passages are retrieved and packed, best first, into ``max_context_tokens`` (counted
    with the generator's tokenizer when it has ``count_tokens``, else :func:`estimate_tokens`;
    also capped by the generator's ``context_window`` minus the answer's ``max_tokens``).
    The answer is ``"not found in the documents"`` with no citations when nothing is retrieved,
    no hit scores at least ``min_score``, the model says the passages lack the answer, or (with
    ``require_citations``, the default) the answer cites no passage it was given.

    Passages reach the model as quoted, untrusted data (see
    :mod:`~rag_retrievers.generators.prompts`). Citations are the answer's own ``[n]`` markers
    mapped to document ids (numbers outside the context are dropped; a passage's own ``[n]``
    is shown to the model as ``(n)``, so it cannot pass for one). Small models often write no
    markers: then, with ``attribute_uncited`` (the default), the passages holding at least half
    of the answer's content words are cited for it (:func:`overlap_citations`) and
    ``Answer.citations_from`` is ``"overlap"``, not ``"model"``.

    ``generator`` is a :class:`~rag_retrievers.generators.Generator` or anything
    :func:`~rag_retrievers.generators.resolve_generator` accepts (a name, a URL, a .gguf path);
    ``None`` is SmolLM2-135M through llama.cpp. ``generate_params`` (``max_tokens``,
    ``temperature``...) go with every call. See the module docstring for an example.
    """

    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | str | None = None,
        *,
        prompt: RagPrompt | str = DEFAULT_PROMPT,
        k: int = 5,
        max_context_tokens: int = 1024,
        min_score: float | None = None,
        require_citations: bool = True,
        attribute_uncited: bool = True,
        filter: Filter | None = None,
        generate_params: Mapping[str, Any] | None = None,
    ) -> None:
        from rag_retrievers.base import Retriever
        from rag_retrievers.generators.registry import resolve_generator

        if not isinstance(retriever, Retriever):
            raise InvalidInputError(
                f"retriever must be a rag_retrievers Retriever, got {type(retriever).__name__}"
            )
        self.k = check_k(k)
        if (
            isinstance(max_context_tokens, bool)
            or not isinstance(max_context_tokens, int)
            or max_context_tokens < MIN_CONTEXT_TOKENS
        ):
            raise InvalidInputError(
                f"max_context_tokens must be an int >= {MIN_CONTEXT_TOKENS}, "
                f"got {max_context_tokens!r}"
            )
        if min_score is not None and (
            isinstance(min_score, bool) or not isinstance(min_score, int | float)
        ):
            raise InvalidInputError(f"min_score must be a number or None, got {min_score!r}")
        self.prompt = RagPrompt(system="", user=prompt) if isinstance(prompt, str) else prompt
        if not isinstance(self.prompt, RagPrompt):
            raise InvalidInputError(f"prompt must be a RagPrompt or a str, got {prompt!r}")
        self.generate_params = dict(generate_params or {})
        check_params(self.generate_params)
        self.retriever = retriever
        self.generator = resolve_generator(generator)
        self.max_context_tokens, self.min_score = max_context_tokens, min_score
        self.require_citations, self.filter = bool(require_citations), filter
        self.attribute_uncited = bool(attribute_uncited)

    def __repr__(self) -> str:
        return (
            f"RAG({self.retriever!r}, {self.generator!r}, k={self.k}, "
            f"max_context_tokens={self.max_context_tokens})"
        )

    # -- the steps -----------------------------------------------------------------------------

    def _budget(self, question: str, count: Callable[[str], int]) -> int:
        budget = self.max_context_tokens
        window = getattr(self.generator, "context_window", None)
        if isinstance(window, int):
            answer_tokens = self.generate_params.get("max_tokens") or getattr(
                self.generator, "defaults", {}
            ).get("max_tokens", 256)
            skeleton = sum(
                count(m["content"]) for m in self.prompt.messages(context="", question=question)
            )
            budget = min(budget, window - answer_tokens - skeleton - TEMPLATE_MARGIN)
            if budget < MIN_CONTEXT_TOKENS:
                raise InvalidInputError(
                    f"the generator's context window ({window} tokens) leaves {budget} tokens "
                    f"for passages after the prompt and max_tokens={answer_tokens}: use a "
                    "shorter question, a smaller max_tokens or a larger n_ctx"
                )
        return budget

    def _eligible(self, hits: list[Hit]) -> list[Hit]:
        if self.min_score is None:
            return hits
        return [hit for hit in hits if hit.score >= self.min_score]

    def prepare(self, question: str, hits: list[Hit]) -> tuple[list[Passage], list[dict[str, str]]]:
        """The passages that fit and the chat messages for ``question`` (public so an
        evaluation can inspect exactly what the model is shown)."""
        count = token_counter(self.generator)
        passages = pack_passages(self._eligible(hits), self._budget(question, count), count)
        context = "\n".join(p.render() for p in passages)
        return passages, self.prompt.messages(context=context, question=question)

    def _answer(self, text: str, passages: list[Passage], question: str) -> Answer:
        contexts = [_as_given(p) for p in passages]
        if says_not_found(text):
            return Answer(text=NOT_FOUND, contexts=contexts)
        numbers = parse_citations(text, len(passages))
        source: Literal["model", "overlap"] | None = "model" if numbers else None
        if not numbers and self.attribute_uncited:
            numbers = overlap_citations(text, [p.text for p in passages], question)
            source = "overlap" if numbers else None
        if self.require_citations and not numbers:
            return Answer(text=NOT_FOUND, contexts=contexts)
        ids = list(dict.fromkeys(passages[n - 1].hit.id for n in numbers))
        return Answer(text=text.strip(), citations=ids, contexts=contexts, citations_from=source)

    def _retrieve(self, question: str, k: int | None, filter: Filter | None) -> list[Hit]:
        return self.retriever.search(question, k=self._k(k), filter=self._filter(filter))

    def _k(self, k: int | None) -> int:
        return self.k if k is None else check_k(k)

    def _filter(self, filter: Filter | None) -> Filter | None:
        return self.filter if filter is None else filter

    # -- the API -------------------------------------------------------------------------------

    def ask(self, question: str, *, k: int | None = None, filter: Filter | None = None) -> Answer:
        """Retrieve, generate and cite. ``k`` and ``filter`` override the pipeline's."""
        check_query(question)
        passages, messages = self.prepare(question, self._retrieve(question, k, filter))
        if not passages:
            return Answer(text=NOT_FOUND)
        text = self.generator.generate(messages, **self.generate_params)
        return self._answer(text, passages, question)

    async def aask(
        self, question: str, *, k: int | None = None, filter: Filter | None = None
    ) -> Answer:
        """:meth:`ask` for asyncio: retrieval in a worker thread, generation by ``agenerate``."""
        check_query(question)
        hits = await self.retriever.asearch(question, k=self._k(k), filter=self._filter(filter))
        passages, messages = self.prepare(question, hits)
        if not passages:
            return Answer(text=NOT_FOUND)
        text = await self.generator.agenerate(messages, **self.generate_params)
        return self._answer(text, passages, question)

    def stream(
        self, question: str, *, k: int | None = None, filter: Filter | None = None
    ) -> AnswerStream:
        """Retrieve now; iterate the result for the answer's text as it is generated, then read
        ``.answer`` for the citations.

        >>> from rag_retrievers import BM25, Document
        >>> from rag_retrievers.generators import GeneratorBase
        >>> class Fixed(GeneratorBase):
        ...     def generate(self, messages, **params):
        ...         return "Paris [1]."
        >>> bm25 = BM25(); bm25.add([Document(id="fr", text="Paris is the capital of France.")])
        >>> streamed = RAG(bm25, Fixed()).stream("capital of France?")
        >>> "".join(streamed), streamed.answer.citations
        ('Paris [1].', ['fr'])
        """
        check_query(question)
        passages, messages = self.prepare(question, self._retrieve(question, k, filter))
        if not passages:
            return AnswerStream(iter([NOT_FOUND]), passages, self._answer, question)
        pieces = self.generator.stream(messages, **self.generate_params)
        return AnswerStream(pieces, passages, self._answer, question)


def _as_given(passage: Passage) -> Hit:
    """The hit with its document's text as the model saw it (truncated if it was)."""
    hit = passage.hit
    if not passage.truncated or hit.document is None:
        return hit
    return hit.model_copy(
        update={"document": hit.document.model_copy(update={"text": passage.text})}
    )


class AnswerStream:
    """Iterate for text pieces; after the last one, :attr:`answer` holds the parsed Answer.
    :attr:`contexts` (the passages given to the model) is available from the start."""

    def __init__(
        self,
        pieces: Iterator[str],
        passages: list[Passage],
        finish: Callable[[str, list[Passage], str], Answer],
        question: str,
    ) -> None:
        self._pieces, self._passages, self._finish = pieces, passages, finish
        self._question = question
        self._seen: list[str] = []
        self._answer: Answer | None = None
        self.contexts = [_as_given(p) for p in passages]

    def __iter__(self) -> Iterator[str]:
        for piece in self._pieces:
            self._seen.append(piece)
            yield piece
        text = "".join(self._seen)
        self._answer = (
            self._finish(text, self._passages, self._question)
            if self._passages
            else Answer(text=NOT_FOUND)
        )

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            raise InvalidInputError("the answer is ready once the stream has been read to the end")
        return self._answer
