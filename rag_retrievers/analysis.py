"""Text analysis for lexical retrieval: tokenize, lowercase, drop stopwords, stem.

The defaults: tokens of two or more word characters (as bm25s and scikit-learn), lowercased,
Lucene's ``EnglishAnalyzer`` stopword set, and the Snowball English stemmer (PyStemmer; Lucene's
EnglishAnalyzer and Pyserini use the older Porter stemmer). With BM25 this reproduces the
published BM25 figures on SciFact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from rag_retrievers.errors import InvalidInputError, UnknownNameError

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (also bm25s's "en").
LUCENE_ENGLISH = frozenset(
    (
        "a an and are as at be but by for if in into is it no not of on or such that the their "
        "then there these they this to was will with"
    ).split()
)
_MAX_CACHED_TOKENS = 2_000_000
STOPWORD_LISTS: dict[str, frozenset[str]] = {"english": LUCENE_ENGLISH, "none": frozenset()}


@dataclass(frozen=True)
class Analyzer:
    """Turns text into index terms; a frozen value, so it can be saved and compared.

    ``stopwords`` is a registered list name (``"english"``, ``"none"``) or the words themselves;
    ``stemmer`` is a Snowball language known to PyStemmer, or ``None``.

    >>> Analyzer().analyze("The runners were running quickly")
    ['runner', 'were', 'run', 'quick']
    """

    token_pattern: str = r"(?u)\b\w\w+\b"
    lowercase: bool = True
    stopwords: str | tuple[str, ...] = "english"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        if isinstance(self.stopwords, str) and self.stopwords not in STOPWORD_LISTS:
            raise UnknownNameError("stopword list", self.stopwords, STOPWORD_LISTS)
        if not isinstance(self.stopwords, str):
            # stopwords are matched against the tokens, so they get the same case folding
            words = {w.lower() if self.lowercase else w for w in self.stopwords}
            object.__setattr__(self, "stopwords", tuple(sorted(words)))
        try:
            re.compile(self.token_pattern)
        except re.error as exc:
            raise InvalidInputError(
                f"token_pattern {self.token_pattern!r} is not a regex: {exc}"
            ) from None
        if self.stemmer is not None:
            import Stemmer

            if self.stemmer not in Stemmer.algorithms():
                raise UnknownNameError("stemmer", self.stemmer, Stemmer.algorithms())
        # not fields: a table of surface token -> term ("" for a stopword), filled as text
        # arrives, and the lock that guards filling it (Snowball stemmers are not thread-safe)
        object.__setattr__(self, "_terms", {})
        object.__setattr__(self, "_learn_lock", threading.Lock())

    @cached_property
    def _split(self) -> Callable[[str], list[str]]:
        return re.compile(self.token_pattern).findall

    @cached_property
    def _stopset(self) -> frozenset[str]:
        if isinstance(self.stopwords, str):
            return STOPWORD_LISTS[self.stopwords]
        return frozenset(self.stopwords)

    @cached_property
    def _stem_words(self) -> Callable[[list[str]], list[str]] | None:
        if self.stemmer is None:
            return None
        import Stemmer

        return Stemmer.Stemmer(self.stemmer).stemWords

    def analyze(self, text: str) -> list[str]:
        """Terms of one text, in order, repeats kept."""
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[list[str]]:
        """Terms of many texts; each distinct surface token is stemmed once per analyzer."""
        split = self._split
        tokenized = [split(t.lower()) if self.lowercase else split(t) for t in texts]
        terms: dict[str, str] = self._terms  # type: ignore[attr-defined]
        if not terms.keys() >= set().union(*tokenized):
            terms = self._learn(tokenized)
        term = terms.__getitem__
        # map/filter run in C: this line is most of the cost of indexing a large corpus
        return [list(filter(None, map(term, tokens))) for tokens in tokenized]

    def _learn(self, tokenized: list[list[str]]) -> dict[str, str]:
        """Add this batch's unseen tokens to the table; returns a table that holds them all.

        Adding is safe for concurrent readers (each dict operation is atomic). A full table is
        replaced, never cleared, so a reader holding the old one is not disturbed; the unseen
        set is computed under the lock against the table current then.
        """
        with self._learn_lock:  # type: ignore[attr-defined]
            terms: dict[str, str] = self._terms  # type: ignore[attr-defined]
            batch = set().union(*tokenized)
            if len(terms) + len(batch) > _MAX_CACHED_TOKENS:
                terms = {}
            unseen = batch.difference(terms)
            stop = self._stopset
            words = [w for w in unseen if w not in stop]
            stems = self._stem_words(words) if self._stem_words else words
            learned = dict.fromkeys(unseen & stop, "")
            learned.update(zip(words, stems, strict=True))
            terms.update(learned)
            object.__setattr__(self, "_terms", terms)
            return terms

    def to_config(self) -> dict[str, Any]:
        config = asdict(self)
        if isinstance(self.stopwords, tuple):
            config["stopwords"] = list(self.stopwords)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Analyzer:
        config = dict(config)
        if isinstance(config.get("stopwords"), list):
            config["stopwords"] = tuple(config["stopwords"])
        return cls(**config)
