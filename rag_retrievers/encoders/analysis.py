"""Text analysis for lexical retrieval: tokenize, lowercase, drop stopwords, stem.

The defaults: tokens of two or more word characters (as bm25s and scikit-learn), lowercased,
Lucene's ``EnglishAnalyzer`` stopword set, and the Snowball English stemmer (PyStemmer; Lucene's
EnglishAnalyzer and Pyserini use the older Porter stemmer). With BM25 this reproduces the
published BM25 figures on SciFact.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

from rag_retrievers.errors import InvalidInputError, UnknownNameError

try:  # the regex parser moved in Python 3.11; sre_parse still works there, with a warning
    _regex_parser: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python < 3.11
    _regex_parser = importlib.import_module("sre_parse")

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (also bm25s's "en").
LUCENE_ENGLISH = frozenset(
    (
        "a an and are as at be but by for if in into is it no not of on or such that the their "
        "then there these they this to was will with"
    ).split()
)
_MAX_CACHED_TOKENS = 2_000_000
STOPWORD_LISTS: dict[str, frozenset[str]] = {"english": LUCENE_ENGLISH, "none": frozenset()}

#: token patterns longer than this are refused (a manifest is not trusted)
MAX_PATTERN_LENGTH = 1000
#: a quantifier allowing more repeats than this (``*``, ``+``, ``{m,}``...) counts as unbounded
_UNBOUNDED_SPAN = 64
#: at most this many ways for a pattern's bounded quantifiers and alternatives to match
_MAX_CHOICES = 4096
_REPEATS = frozenset(
    getattr(_regex_parser, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(_regex_parser, name)
)
_REFUSED_OPS = {
    _regex_parser.GROUPREF: "a backreference",
    _regex_parser.GROUPREF_EXISTS: "a conditional group",
    _regex_parser.ASSERT: "a lookahead or lookbehind",
    _regex_parser.ASSERT_NOT: "a lookahead or lookbehind",
}
_GROUP_OPS = frozenset(
    getattr(_regex_parser, name)
    for name in ("SUBPATTERN", "ATOMIC_GROUP")
    if hasattr(_regex_parser, name)
)


class UnknownConfigKeyError(InvalidInputError, TypeError):
    """An analyzer config holds a key that is not an :class:`Analyzer` field (also a
    ``TypeError``, as an unknown keyword argument is)."""


class _Refused(Exception):
    """Why a token pattern is refused (internal: becomes an InvalidInputError)."""


def check_token_pattern(pattern: object) -> str:
    r"""Return ``pattern`` if it is a regex that cannot backtrack catastrophically (the rules are
    in :class:`Analyzer`'s docstring), else raise :class:`InvalidInputError` naming it and why.

    >>> check_token_pattern(r"\w+")
    '\\w+'
    >>> try:
    ...     check_token_pattern(r"(\w+\s?)+$")
    ... except InvalidInputError as exc:
    ...     print("nested quantifiers" in str(exc))
    True
    """
    if not isinstance(pattern, str):
        raise InvalidInputError(f"token_pattern must be a str, got {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidInputError(
            f"token_pattern must be at most {MAX_PATTERN_LENGTH} characters, got {len(pattern)}"
        )
    try:
        parsed = _regex_parser.parse(pattern)
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise InvalidInputError(f"token_pattern {pattern!r} is not a regex: {exc}") from None
    try:
        unbounded, choices = _backtracking(list(parsed))
        if unbounded > 1:
            raise _Refused(
                f"{unbounded} unbounded quantifiers (*, +, {{m,}}, {{m,n}} with n - m > "
                f"{_UNBOUNDED_SPAN}) can match one after another (at most 1: each more makes a "
                "search a power of the text's length slower)"
            )
        if choices > _MAX_CHOICES:
            raise _Refused(
                f"its bounded quantifiers and alternatives give {choices} ways to match "
                f"(at most {_MAX_CHOICES})"
            )
    except _Refused as why:
        raise InvalidInputError(f"token_pattern {pattern!r} is refused: {why}") from None
    return pattern


def _backtracking(items: list[tuple[Any, Any]]) -> tuple[int, int]:
    """For a parsed regex sequence: the most unbounded quantifiers one match passes through,
    and the number of ways its bounded quantifiers and alternatives can match; raises
    :class:`_Refused` for constructs that backtrack without bound."""
    unbounded, choices = 0, 1
    for op, av in items:
        if op in _REFUSED_OPS:
            raise _Refused(f"it holds {_REFUSED_OPS[op]}")
        if op in _REPEATS:
            low, high, body = av
            if high > 1 and _has_choice(list(body)):
                raise _Refused(
                    "it repeats a group that holds a quantifier or an alternation "
                    "(nested quantifiers backtrack exponentially)"
                )
            inner_unbounded, inner_choices = _backtracking(list(body))
            if high - low > _UNBOUNDED_SPAN:
                unbounded += 1
            else:
                choices *= high - low + 1
            unbounded += inner_unbounded
            choices *= inner_choices
        elif op == _regex_parser.BRANCH:
            branches = [_backtracking(list(branch)) for branch in av[1]]
            unbounded += max(u for u, _ in branches)
            choices *= sum(c for _, c in branches)
        elif op in _GROUP_OPS:
            inner_unbounded, inner_choices = _backtracking(list(_group_body(op, av)))
            unbounded += inner_unbounded
            choices *= inner_choices
        if choices > _MAX_CHOICES:  # stop multiplying: the answer is already no
            return unbounded, choices
    return unbounded, choices


def _group_body(op: Any, av: Any) -> Any:
    return av[3] if op == _regex_parser.SUBPATTERN else av  # (group, flags..., body) / body


def _has_choice(items: list[tuple[Any, Any]]) -> bool:
    """Whether a parsed sequence holds a quantifier or an alternation, at any depth."""
    for op, av in items:
        if op in _REPEATS or op == _regex_parser.BRANCH:
            return True
        if op in _GROUP_OPS and _has_choice(list(_group_body(op, av))):
            return True
    return False


@dataclass(frozen=True)
class Analyzer:
    """Turns text into index terms; a frozen value, so it can be saved and compared.

    ``stopwords`` is a registered list name (``"english"``, ``"none"``) or the words themselves;
    ``stemmer`` is a Snowball language known to PyStemmer, or ``None``; ``lowercase`` a bool.

    ``token_pattern`` is a regex whose matches are the tokens (``re.findall``). An analyzer is
    read back from a collection's manifest, which is not trusted, so a pattern must not be able
    to backtrack catastrophically; one is refused (:class:`InvalidInputError` saying why) if it
    holds

    - a backreference, a lookahead or lookbehind, or a conditional group;
    - a group repeated more than once (``+``, ``*``, ``{m,n}`` with ``n > 1``) that holds a
      quantifier or an alternation (``(\\w+\\s?)+``: exponential in the text's length);
      a character class is no alternation (``(?:a|b)+`` is ``[ab]+``);
    - more than one unbounded quantifier (``*``, ``+``, ``{m,}``, or ``{m,n}`` with
      ``n - m > 64``) that one match can pass through in turn (``\\w+\\w+x``: cubic; alternatives
      such as ``\\w+|[^\\w\\s]`` count one each);
    - more than 4,096 ways for its bounded quantifiers and alternatives to match
      (``a?a?a?...``);
    - more than :data:`MAX_PATTERN_LENGTH` characters.

    The default ``(?u)\\b\\w\\w+\\b`` and the usual token patterns (``\\w+``, ``\\S+``,
    ``[a-z0-9]+``, ``(?u)\\b\\w+\\b``, ``[^ ]+``) pass.

    >>> Analyzer().analyze("The runners were running quickly")
    ['runner', 'were', 'run', 'quick']
    """

    token_pattern: str = r"(?u)\b\w\w+\b"
    lowercase: bool = True
    stopwords: str | tuple[str, ...] = "english"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        check_token_pattern(self.token_pattern)
        if not isinstance(self.lowercase, bool):
            raise InvalidInputError(f"lowercase must be true or false, got {self.lowercase!r}")
        if isinstance(self.stopwords, str):
            if self.stopwords not in STOPWORD_LISTS:
                raise UnknownNameError("stopword list", self.stopwords, STOPWORD_LISTS)
        elif isinstance(self.stopwords, list | tuple | set | frozenset):
            wrong = [w for w in self.stopwords if not isinstance(w, str)]
            if wrong:
                raise InvalidInputError(
                    f"stopwords must be a list name ({', '.join(STOPWORD_LISTS)}) or a list of "
                    f"strings; it holds {wrong[0]!r}"
                )
            # stopwords are matched against the tokens, so they get the same case folding
            words = {w.lower() if self.lowercase else w for w in self.stopwords}
            object.__setattr__(self, "stopwords", tuple(sorted(words)))
        else:
            raise InvalidInputError(
                f"stopwords must be a list name ({', '.join(STOPWORD_LISTS)}) or a list of "
                f"strings, got {type(self.stopwords).__name__}"
            )
        if self.stemmer is not None:
            import Stemmer

            if not isinstance(self.stemmer, str) or self.stemmer not in Stemmer.algorithms():
                raise UnknownNameError("stemmer", self.stemmer, [*Stemmer.algorithms(), "None"])
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
    def from_config(cls, config: Mapping[str, Any]) -> Analyzer:
        """The analyzer :meth:`to_config` describes; every value is checked as the constructor
        checks it, and a key that is not a field raises :class:`UnknownConfigKeyError`."""
        if not isinstance(config, Mapping):
            raise InvalidInputError(
                f"an analyzer config must be a mapping of {', '.join(_FIELDS)}, got "
                f"{type(config).__name__}"
            )
        unknown = sorted(map(str, set(config) - set(_FIELDS)))
        if unknown:
            raise UnknownConfigKeyError(
                f"unknown analyzer config key(s) {', '.join(map(repr, unknown))}; valid keys: "
                f"{', '.join(_FIELDS)}"
            )
        config = dict(config)
        if isinstance(config.get("stopwords"), list):
            config["stopwords"] = tuple(config["stopwords"])
        return cls(**config)


_FIELDS = tuple(f.name for f in fields(Analyzer))
