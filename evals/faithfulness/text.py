"""Text pieces the faithfulness judges compare: sentences, claims, content words and the facts
that similarity misses (numbers, dates, names, negation, direction).

Pure functions, regular expressions only: deterministic, no model, no download.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

# A sentence ends at . ! or ? followed by space and an upper-case letter, a digit or a quote;
# the abbreviations below never end one.
_ABBREVIATIONS = frozenset(
    "e.g i.e et al fig figs vs dr mr mrs ms prof no nos approx ca cf st jr sr inc ltd co corp "
    "u.s u.k eq eqs ref refs vol p pp".split()
)
_SENTENCE_END = re.compile(r"([.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_CLAUSE_BREAK = re.compile(r";\s+|,\s+(?=(?:but|while|whereas|although|though|yet)\b)", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d[\d,]*(?:\.\d+)?")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in into is
    it its itself just let me more most my myself of off on once only or other our ours ourselves
    out over own same she should so some such than that the their theirs them themselves then
    there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves""".split()
)

NEGATIONS = frozenset(
    """not no never none nobody nothing neither nor cannot without n't lack lacks lacking lacked
    absent absence fail fails failed unable unlikely false myth hoax deny denies denied""".split()
)

# words that say a quantity goes up or down; opposite directions in a claim and its supporting
# span are a contradiction that sentence similarity barely notices
UP_WORDS = frozenset(
    """increase increases increased increasing increment rise rises rising rose risen grow grows
    growing grew grown growth higher high highest more greater greatest larger raise raises raised
    raising boost boosts boosted enhance enhances enhanced enhancing elevate elevated elevates
    accelerate accelerates accelerated accelerating expand expands expanded expanding gain gains
    gained up upregulate upregulates upregulated upregulation promote promotes promoted promoting
    activate activates activated activation induce induces induced improve improves improved
    warming warmer warmest exceed exceeds exceeded above""".split()
)
DOWN_WORDS = frozenset(
    """decrease decreases decreased decreasing decline declines declined declining reduce reduces
    reduced reducing reduction fall falls falling fell fallen drop drops dropped dropping lower
    lowest low less fewer least smaller shrink shrinks shrinking shrank diminish diminishes
    diminished diminishing suppress suppresses suppressed suppression inhibit inhibits inhibited
    inhibiting inhibition impair impairs impaired slow slows slowed slowing downregulate
    downregulates downregulated downregulation loss lose loses lost attenuate attenuates
    attenuated prevent prevents prevented block blocks blocked cooling cooler coolest below
    down""".split()
)

_MONTHS = (
    "january february march april may june july august september october november december".split()
)
_MONTH_ABBR = {m[:3]: m for m in _MONTHS} | {"sept": "september"}
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "sixty": "60",
    "seventy": "70",
    "eighty": "80",
    "ninety": "90",
    "hundred": "100",
    "thousand": "1000",
    "million": "1000000",
    "billion": "1000000000",
    "half": "0.5",
    "twice": "2",
    "double": "2",
    "triple": "3",
}
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?(?![\w])|(?<![\w.])\.\d+")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)s?\b")
_CAPITALISED = re.compile(r"\b(?:[A-Z][a-z]+(?:[-'][A-Za-z]+)*|[A-Z][A-Z0-9\-]{1,}[a-z]?)\b")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split at line breaks and at sentence ends, abbreviations kept.

    >>> split_sentences("Dr. Smith et al. found it. Levels rose 5%.\\nA new line")
    ['Dr. Smith et al. found it.', 'Levels rose 5%.', 'A new line']
    """
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(line):
            before = line[start : match.start()].rstrip()
            last = before.rsplit(None, 1)[-1].lower().rstrip(".") if before.strip() else ""
            if match.group(1) == "." and (last in _ABBREVIATIONS or len(last) == 1):
                continue  # "et al. Found" or an initial "J. Smith" does not end a sentence
            piece = line[start : match.end()].strip()
            if piece:
                sentences.append(piece)
            start = match.end()
        piece = line[start:].strip()
        if piece:
            sentences.append(piece)
    return [s for s in sentences if any(c.isalnum() for c in s)]


def split_claims(text: str, *, min_words: int = 4) -> list[str]:
    """Claims of an answer: its sentences, each cut into clauses at semicolons and at ", but" /
    ", while" / ", whereas" ... where both sides have at least ``min_words`` words.

    >>> split_claims("Rates rose in 2010; they fell in every later year. It is hot.")
    ['Rates rose in 2010', 'they fell in every later year.', 'It is hot.']
    >>> split_claims("Sales rose in the north, but they fell in the south.")
    ['Sales rose in the north', 'but they fell in the south.']
    """
    claims: list[str] = []
    for sentence in split_sentences(text):
        # cut points; a piece too short to stand alone stays with its neighbour
        cuts = [0, *(m.start() for m in _CLAUSE_BREAK.finditer(sentence)), len(sentence)]
        start = 0
        for i in range(1, len(cuts)):
            head = sentence[start : cuts[i]]
            rest = sentence[cuts[i] :]
            if i < len(cuts) - 1 and (
                len(head.split()) < min_words
                or len(_CLAUSE_BREAK.sub(" ", rest).split()) < min_words
            ):
                continue
            piece = _CLAUSE_BREAK.sub("", head, count=1) if start else head
            piece = piece.strip().rstrip(";,").strip()
            if piece:
                claims.append(piece)
            start = cuts[i]
    return claims


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens; "n't" is split off as its own token."""
    out: list[str] = []
    for token in _WORD.findall(text):
        low = token.lower()
        if low.endswith("n't"):
            out.extend((low[:-3], "n't"))
        else:
            out.append(low.strip("'-"))
    return [w for w in out if w]


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return str(_stemmer().stemWord(word))  # type: ignore[attr-defined]


def content_stems(text: str) -> list[str]:
    """Stems of the words that carry content: no stopwords, no negations, no single letters."""
    return [
        stem(w) for w in words(text) if w not in STOPWORDS and w not in NEGATIONS and len(w) > 1
    ]


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, normalised (``1,000`` -> ``1000``, ``5.0`` -> ``5``, "two" -> ``2``);
    years are left to :func:`dates`."""
    found: set[str] = set()
    for match in _NUMBER.finditer(text):
        value = match.group(0).replace(",", "").replace("−", "-")
        if _YEAR.fullmatch(value.lstrip("-")):
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        found.add(_format_number(number))
    for w in words(text):
        if w in _NUMBER_WORDS:
            found.add(_NUMBER_WORDS[w])
    return found


def _format_number(number: float) -> str:
    return str(int(number)) if number == int(number) else f"{number:g}"


def dates(text: str) -> set[str]:
    """Years (``1998``, ``1990s``) and month names in ``text``, lower case."""
    found = {m.group(0).lower() for m in _YEAR.finditer(text)}
    for w in words(text):
        if w in _MONTHS:
            # "may" is a verb far more often than a month: only when capitalised mid-sentence
            if w == "may" and not re.search(r"(?<=\w )May\b", text):
                continue
            found.add(w)
        elif w.rstrip(".") in _MONTH_ABBR and re.search(rf"\b{w[:1].upper()}{w[1:]}\b", text):
            found.add(_MONTH_ABBR[w.rstrip(".")])
    return found


def entities(text: str, *, is_common: Callable[[str], bool] | None = None) -> set[str]:
    """Names in ``text``: capitalised words not at the start of a sentence, and acronyms
    (``NASA``, ``IL-6``), lower-cased; months, stopwords and negations excluded.

    With ``is_common`` (a lower-case word -> bool), a capitalised first word of a sentence
    counts as a name too when it is not a common word."""
    found: set[str] = set()
    for sentence in split_sentences(text):
        for match in _CAPITALISED.finditer(sentence):
            word = match.group(0)
            low = word.lower()
            if low in STOPWORDS or low in NEGATIONS or low in _MONTHS or low in _NUMBER_WORDS:
                continue
            is_acronym = sum(c.isupper() for c in word) >= 2
            if match.start() == 0 and not is_acronym and (is_common is None or is_common(low)):
                continue  # the first word of a sentence is capitalised anyway
            found.add(low)
    return found


def negation_count(text: str) -> int:
    return sum(1 for w in words(text) if w in NEGATIONS)


def direction(text: str) -> int:
    """+1 when ``text`` says things go up, -1 down, 0 neither or both; a negation flips it."""
    toks = words(text)
    up = sum(1 for w in toks if w in UP_WORDS)
    down = sum(1 for w in toks if w in DOWN_WORDS)
    sign = (up > down) - (down > up)
    return -sign if negation_count(text) % 2 else sign


@dataclass(frozen=True)
class Facts:
    """What :func:`facts` finds in a text, compared between a claim and its evidence."""

    numbers: frozenset[str]
    dates: frozenset[str]
    entities: frozenset[str]
    negations: int
    direction: int


def facts(text: str, *, is_common: Callable[[str], bool] | None = None) -> Facts:
    return Facts(
        numbers=frozenset(numbers(text)),
        dates=frozenset(dates(text)),
        entities=frozenset(entities(text, is_common=is_common)),
        negations=negation_count(text),
        direction=direction(text),
    )


def missing(wanted: Iterable[str], text: str) -> list[str]:
    """The items of ``wanted`` (lower case) that occur nowhere in ``text`` as words or stems."""
    low = text.lower()
    toks = set(words(text))
    stems = {stem(w) for w in toks}
    out = []
    for item in sorted(set(wanted)):
        if item in toks or stem(item) in stems:
            continue
        if not item.isalpha() and re.search(rf"(?<![\w.]){re.escape(item)}(?![\w])", low):
            continue
        out.append(item)
    return out


_AUXILIARY = re.compile(
    r"\b(is|are|was|were|has|have|had|will|can|could|would|should|may|might|must|does|do|did)\b",
    re.I,
)


def negate(claim: str) -> str:
    """A rough negation of ``claim``, for contrast with the claim itself: drop its first "not" /
    "n't" when it has one, else put "not" after its first auxiliary verb, else prefix
    "It is not true that".

    >>> negate("Sea levels are rising.")
    'Sea levels are not rising.'
    >>> negate("Ice did not melt.")
    'Ice did melt.'
    >>> negate("Ice melts.")
    'It is not true that ice melts.'
    """
    if re.search(r"\bnot\b", claim):
        return re.sub(r"\bnot\s+", "", claim, count=1)
    if "n't" in claim:
        return claim.replace("n't", "", 1)
    match = _AUXILIARY.search(claim)
    if match:
        return claim[: match.end()] + " not" + claim[match.end() :]
    return "It is not true that " + claim[:1].lower() + claim[1:]
