"""An answerer without a language model: it quotes the retrieved sentences that best answer
the question, each with its citation, or abstains.

:class:`ExtractiveAnswerer` is a :class:`~rag_retrievers.generators.Generator`, so the RAG
pipeline drives it like any other (``RAG(bm25, ExtractiveAnswerer())``, ``--generator
extractive``). It reads the passages and the question back from the RAG prompt it is given
(:func:`parse_rag_prompt`: the ``<passage id="n">`` blocks that
:func:`~rag_retrievers.generators.prompts.format_passage` writes, and the text around them),
splits the passages into sentences (:func:`split_sentences`) and scores each sentence against
the question:

- **lexical**: the idf-weighted share of the question's content words (stemmed by
  :class:`~rag_retrievers.encoders.analysis.Analyzer`, stopwords and question words such as
  *which* or *does* dropped) that the sentence holds, idf over the sentences of the passages;
- **dense**: the cosine of question and sentence vectors from a sentence-transformers model
  (MiniLM by default, loaded on first use), clipped at 0;
- **score** = ``dense_weight`` x dense + (1 - ``dense_weight``) x lexical, in [0, 1]
  (lexical alone with ``model=None``, or when sentence-transformers is not installed: the
  ``repr`` then says so).

A sentence that adds no content word to the question's (a title that restates it) is no answer
and scores 0; a title that restates the question, glued to a passage's first sentence, is cut
off it (:func:`strip_leading_echo`).

The answer is the best ``max_sentences`` sentences (those within ``keep_ratio`` of the best
score), best first (``order="score"``) or as they stand in the
passages (``order="passage"``), each ending in its citation ``[n]``; ``max_tokens`` (about 4
characters a token) limits how many are quoted, never cuts one. When no sentence scores
``min_score`` the answer is ``not found in the documents``. The text is quoted as the RAG prompt
shows it: a document's own ``[2]`` reads ``(2)`` there, so it never passes for a citation.
Deterministic: no sampling; ties go to the earlier passage and sentence.

Yes/no questions get the quoted evidence, no yes or no: deciding one from a quote would be a
guess this answerer has no honest way to make.

>>> from rag_retrievers.generators.prompts import format_passage
>>> context = "\\n".join([format_passage(1, "Rome is in Italy. It has the Colosseum."),
...                       format_passage(2, "Paris is the capital of France. It is large.")])
>>> answerer = ExtractiveAnswerer(model=None)
>>> answerer.generate(f"{context}\\n\\nQuestion: What is the capital of France?")
'Paris is the capital of France [2].'
>>> answerer.generate(f"{context}\\n\\nQuestion: How do bees make honey?")
'not found in the documents'
"""

from __future__ import annotations

import importlib.util
import math
import re
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rag_retrievers.encoders.analysis import LUCENE_ENGLISH
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators.base import (
    GeneratorBase,
    PromptOrMessages,
    check_params,
    to_messages,
)
from rag_retrievers.generators.prompts import NOT_FOUND

if TYPE_CHECKING:
    import numpy as np

    from rag_retrievers.encoders.analysis import Analyzer
    from rag_retrievers.encoders.dense import DenseEncoder

Order = Literal["score", "passage"]
ORDERS: tuple[str, ...] = ("score", "passage")

#: the least score an answer sentence needs, with the dense model and with words alone. Chosen
#: on held-out questions of the shared QA data (questions 21-100 of qa_pubmedqa and
#: qa_hotpotqa_halueval500, BM25 passages as their suites pack them; the suites report on
#: questions 1-20): the value with the best balanced accuracy (the lowest of equals) between
#: answering the 156 questions whose passages include a gold one and abstaining on the 160
#: questions each asked of another question's passages. Dense 0.24: answers all 156, abstains
#: on 98.8%; lexical 0.18: 97.4% and 99.4%. RGB's noise passages are on the question's topic
#: (best sentence 0.34-0.97): no threshold tells them from passages that answer.
DEFAULT_MIN_SCORE: dict[str, float] = {"dense": 0.24, "lexical": 0.18}
#: content words a glued title must restate before it is cut off a sentence
MIN_ECHO_TERMS = 3
#: ... and this share of the question's content words
MIN_ECHO_SHARE = 0.6
#: characters per token when ``max_tokens`` limits the quote (as rag.estimate_tokens)
_CHARS_PER_TOKEN = 4

#: a passage as format_passage writes it: its text is on one line and cannot hold a delimiter
_PASSAGE = re.compile(r'<passage id="(\d+)">\n([^\n]*)\n</passage>')
#: the label in front of the question in the default user template ("Question: ...")
_QUESTION_LABEL = re.compile(r"^\s*(?:question|q)\s*:\s*", re.IGNORECASE)
#: words that ask rather than carry content; dropped from the question's terms
QUESTION_WORDS = (
    "what which who whom whose when where why how does do did done can could would should "
    "may might must has have had was were been being am shall whether tell me please"
)

#: a full stop, "!" or "?" (closing quotes and brackets after it) then space and a capital,
#: digit or opening quote or bracket, or with no space between two words: a candidate end
_BOUNDARY = re.compile(
    r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"
    # texts joined without a space: "...at Ford Stadium.June Jones is..."
    r"|(?<=[a-z][a-z])[.!?](?=[A-Z][a-z])"
)
#: words that end in a full stop without ending a sentence (lower-cased, stop removed)
ABBREVIATIONS = frozenset(
    "al approx ca cf co corp dept dr eq eqs esp fig figs inc jr ltd mr mrs ms no nos prof ref "
    "refs resp sr st vol vs".split()
)


@dataclass(frozen=True)
class PromptPassage:
    """One passage read back from a RAG prompt: its number and its text as quoted there."""

    number: int
    text: str


def parse_rag_prompt(prompt_or_messages: PromptOrMessages) -> tuple[list[PromptPassage], str]:
    """The passages and the question of a RAG prompt: the ``<passage id="n">`` blocks of the
    last user message that has any, and that message's text after the last block (else before
    the first), without a ``Question:`` label. A document cannot add a block:
    :func:`~rag_retrievers.generators.prompts.format_passage` escapes the delimiters in its
    text. :class:`InvalidInputError` when the prompt holds no passage.

    >>> from rag_retrievers.generators.prompts import format_passage
    >>> prompt = format_passage(1, "Paris is in France.") + "\\n\\nQuestion: Where is Paris?"
    >>> parse_rag_prompt(prompt)
    ([PromptPassage(number=1, text='Paris is in France.')], 'Where is Paris?')
    """
    messages = to_messages(prompt_or_messages)
    for message in reversed(messages):
        if message["role"] != "user":
            continue
        content = message["content"]
        matches = list(_PASSAGE.finditer(content))
        if not matches:
            continue
        passages = [PromptPassage(int(m.group(1)), m.group(2).strip()) for m in matches]
        question = content[matches[-1].end() :].strip() or content[: matches[0].start()].strip()
        return passages, _QUESTION_LABEL.sub("", question).strip()
    raise InvalidInputError(
        "the extractive answerer reads the passages of a RAG prompt "
        '(<passage id="n"> blocks written by format_passage); the prompt holds none'
    )


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.``, ``!`` or ``?`` followed by space and a capital
    or digit, except after an abbreviation (``et al.``, ``Fig.``, ``vs.``) or a dotted one
    (``e.g.``, ``U.S.``); decimals (``2.5``) have no space after the point. Texts joined
    without a space (``"...Ford Stadium.June Jones..."``) split between the two words.

    >>> split_sentences("Levels rose 2.5-fold (Smith et al. 2001). E.g. Fig. 3 shows it! Why?")
    ['Levels rose 2.5-fold (Smith et al. 2001).', 'E.g. Fig. 3 shows it!', 'Why?']
    """
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.start()].rsplit(None, 1)
        word = before[-1].lstrip("\"'([") if before else ""
        if text[match.start()] == "." and (word.lower() in ABBREVIATIONS or "." in word):
            continue
        end = match.end()
        sentence = text[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


@dataclass(frozen=True)
class ScoredSentence:
    """A sentence of a passage and its scores against the question."""

    passage: int  # the passage number, as cited
    position: int  # the sentence's index within its passage
    text: str
    lexical: float
    dense: float | None
    score: float


def strip_leading_echo(sentence: str, wanted: set[str], analyzer: Analyzer) -> str:
    """``sentence`` without a leading run of words that only restate ``wanted`` (the question's
    terms: at least :data:`MIN_ECHO_TERMS` of them and :data:`MIN_ECHO_SHARE` of all) and that
    ends on a word other than a stopword, just before a capitalised word: a document's title
    glued to its first sentence (``"Factors that influence vitamin D All vertebrates
    obtain..."``), which would otherwise win on the question's own words. A sentence whose
    subject restates the question (``"Smith was named the Most Valuable Player of Super
    Bowl..."``) keeps it: the run ends on a stopword there.

    >>> from rag_retrievers.encoders.analysis import Analyzer
    >>> a = Analyzer()
    >>> wanted = set(a.analyze("Which factors influence vitamin D production?"))
    >>> strip_leading_echo("Factors that influence vitamin D production Sunlight helps.", wanted, a)
    'Sunlight helps.'
    >>> strip_leading_echo("Vitamin D production needs sunlight.", wanted, a)
    'Vitamin D production needs sunlight.'
    >>> strip_leading_echo("Factors of vitamin D production in Sunlight.", wanted, a)
    'Factors of vitamin D production in Sunlight.'
    """
    words = sentence.split()
    echoed: set[str] = set()
    for i, word in enumerate(words):
        terms = analyzer.analyze(word)
        if terms and not set(terms) <= wanted:
            previous = words[i - 1].strip(string.punctuation).lower() if i else ""
            if (
                previous
                and previous not in LUCENE_ENGLISH
                and word[:1].isupper()
                and len(echoed) >= max(MIN_ECHO_TERMS, MIN_ECHO_SHARE * len(wanted))
            ):
                return " ".join(words[i:])
            return sentence
        echoed.update(terms)
    return sentence


def cite(sentence: str, number: int) -> str:
    """``sentence`` with ``[number]`` before its final punctuation.

    >>> cite("Paris is in France.", 2), cite("Is it? ", 1), cite("No stop", 3)
    ('Paris is in France [2].', 'Is it [1]?', 'No stop [3]')
    """
    body = sentence.strip()
    stripped = body.rstrip(".!?")
    end = body[len(stripped) :]
    return f"{stripped} [{number}]{end[:1]}"


class ExtractiveAnswerer(GeneratorBase):
    """Answer by quoting the passages' best sentences with citations; see the module docstring.

    ``model`` is a dense model name or path (``"minilm"``) or ``None`` for word overlap alone;
    ``min_score`` defaults to :data:`DEFAULT_MIN_SCORE` for the scoring in use.
    """

    def __init__(
        self,
        model: str | None = "minilm",
        *,
        max_sentences: int = 2,
        min_score: float | None = None,
        dense_weight: float = 0.5,
        keep_ratio: float = 0.8,
        order: Order = "score",
        device: str | None = None,
    ) -> None:
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise InvalidInputError(f"model must be a model name, a path or None, got {model!r}")
        if isinstance(max_sentences, bool) or not isinstance(max_sentences, int):
            raise InvalidInputError(f"max_sentences must be an int >= 1, got {max_sentences!r}")
        if max_sentences < 1:
            raise InvalidInputError(f"max_sentences must be an int >= 1, got {max_sentences!r}")
        for name, value in (("dense_weight", dense_weight), ("keep_ratio", keep_ratio)):
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must be a number in [0, 1], got {value!r}")
        if min_score is not None and (not _is_number(min_score) or not 0.0 <= min_score <= 1.0):
            raise InvalidInputError(
                f"min_score must be a number in [0, 1] or None, got {min_score!r}"
            )
        if order not in ORDERS:
            raise InvalidInputError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.model = model
        self.unavailable = _dense_unavailable(model) if model is not None else None
        self.max_sentences = max_sentences
        self.dense_weight = float(dense_weight)
        self.keep_ratio = float(keep_ratio)
        self.order: Order = order
        self.device = device
        self.min_score = (
            float(min_score)
            if min_score is not None
            else DEFAULT_MIN_SCORE["dense" if self.uses_dense else "lexical"]
        )
        self._encoder: DenseEncoder | None = None
        self._analyzer: Analyzer | None = None
        self._lock = threading.Lock()

    @property
    def uses_dense(self) -> bool:
        """Whether sentences are scored with the dense model (else by words alone)."""
        return self.model is not None and self.unavailable is None and self.dense_weight > 0

    def __repr__(self) -> str:
        model = repr(self.model)
        if self.unavailable is not None:
            model += f" [unavailable: {self.unavailable}; lexical scores only]"
        return (
            f"ExtractiveAnswerer(model={model}, max_sentences={self.max_sentences}, "
            f"min_score={self.min_score}, dense_weight={self.dense_weight}, "
            f"keep_ratio={self.keep_ratio}, order={self.order!r})"
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self.model,
            self.uses_dense,
            self.max_sentences,
            self.min_score,
            self.dense_weight,
            self.keep_ratio,
            self.order,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExtractiveAnswerer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    # -- scoring -------------------------------------------------------------------------------

    def _parts(self) -> tuple[Analyzer, DenseEncoder | None]:
        with self._lock:
            if self._analyzer is None:
                from rag_retrievers.encoders.analysis import Analyzer

                self._analyzer = Analyzer()
            if self.uses_dense and self._encoder is None and self.model is not None:
                from rag_retrievers.encoders.dense import DenseEncoder

                self._encoder = DenseEncoder(self.model, device=self.device)
            return self._analyzer, self._encoder

    def score(self, question: str, passages: Sequence[PromptPassage]) -> list[ScoredSentence]:
        """Every sentence of ``passages`` scored against ``question``, in passage order."""
        analyzer, encoder = self._parts()
        asking = set(analyzer.analyze(QUESTION_WORDS))
        wanted = set(analyzer.analyze(question)) - asking
        located: list[tuple[int, int, str]] = []
        for passage in passages:
            sentences = split_sentences(passage.text)
            if sentences:  # a title glued to the first sentence that restates the question
                sentences[0] = strip_leading_echo(sentences[0], wanted, analyzer)
            located.extend((passage.number, i, s) for i, s in enumerate(sentences))
        if not located:
            return []
        texts = [s for _, _, s in located]
        terms = [set(t) for t in analyzer.analyze_many(texts)]
        n = len(texts)
        idf = {}
        for term in wanted:
            df = sum(term in words for words in terms)
            idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        total = sum(idf.values())
        lexical = [sum(idf[t] for t in wanted & s) / total if total else 0.0 for s in terms]
        dense: list[float | None] = [None] * n
        if encoder is not None:
            q = encoder.encode_queries([question])[0]
            vectors = encoder.encode_documents(texts)
            dense = [max(0.0, float(c)) for c in _cosines(vectors, q)]
        weight = self.dense_weight if encoder is not None else 0.0
        scored = []
        for (number, position, text), words, lex, den in zip(
            located, terms, lexical, dense, strict=True
        ):
            value = weight * (den or 0.0) + (1 - weight) * lex
            if not (words - wanted - asking):  # restates the question: no answer in it
                value = 0.0
            scored.append(ScoredSentence(number, position, text, lex, den, value))
        return scored

    def select(
        self, scored: Sequence[ScoredSentence], max_tokens: int | None = None
    ) -> list[ScoredSentence]:
        """The sentences to quote (empty: abstain), in the configured order."""
        ranked = sorted(scored, key=lambda s: (-s.score, s.passage, s.position))
        if not ranked or ranked[0].score < self.min_score:
            return []
        floor = max(self.min_score, self.keep_ratio * ranked[0].score)
        chosen: list[ScoredSentence] = []
        seen: set[str] = set()
        chars = 0
        for sentence in ranked:
            if len(chosen) == self.max_sentences or sentence.score < floor:
                break
            key = " ".join(sentence.text.lower().split())
            if key in seen:
                continue
            chars += len(sentence.text) + 6  # " [n]" and the space between sentences
            if chosen and max_tokens is not None and chars > max_tokens * _CHARS_PER_TOKEN:
                break
            seen.add(key)
            chosen.append(sentence)
        if self.order == "passage":
            chosen.sort(key=lambda s: (s.passage, s.position))
        return chosen

    # -- the generator protocol ----------------------------------------------------------------

    def generate(self, prompt_or_messages: PromptOrMessages, **params: Any) -> str:
        """The cited quote for the RAG prompt's question, or ``not found in the documents``.
        ``max_tokens`` limits the quote; the other common parameters change nothing."""
        check_params(params)
        passages, question = parse_rag_prompt(prompt_or_messages)
        if not question:
            raise InvalidInputError("the RAG prompt holds no question after its passages")
        chosen = self.select(self.score(question, passages), params.get("max_tokens"))
        if not chosen:
            return NOT_FOUND
        return " ".join(cite(s.text, s.passage) for s in chosen)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _cosines(vectors: np.ndarray, query: np.ndarray) -> list[float]:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1) * float(np.linalg.norm(query))
    dots = vectors @ query
    return [float(d / m) if m > 0 else 0.0 for d, m in zip(dots, norms, strict=True)]


def _dense_unavailable(model: str) -> str | None:
    """Why the dense model cannot be used here (``None``: it can). Only a missing
    sentence-transformers, or the missing weights package of a short name, falls back to
    words; another model that cannot be found is an error."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return "sentence-transformers is not installed: pip install 'rag-retrievers[neural]'"
    from rag_retrievers.encoders.models import SHORT_NAMES, UnknownModelError, resolve_model

    try:
        resolve_model(model, "dense")
    except UnknownModelError:
        if model not in SHORT_NAMES:
            raise
        return (
            f"{SHORT_NAMES[model].package} is not installed: pip install 'rag-retrievers[models]'"
        )
    return None
