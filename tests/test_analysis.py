"""Analyzer: tokenizing, lowercasing, stopwords, stemming, names and config."""

from __future__ import annotations

import json

import pytest

from rag_retrievers import BM25, Document, InvalidInputError, UnknownNameError
from rag_retrievers.encoders.analysis import LUCENE_ENGLISH, STOPWORD_LISTS, Analyzer


def test_defaults() -> None:
    analyzer = Analyzer()
    assert analyzer.lowercase is True
    assert analyzer.stopwords == "english"
    assert analyzer.stemmer == "english"
    assert analyzer.analyze("The runners were running quickly") == [
        "runner",
        "were",
        "run",
        "quick",
    ]


def test_default_stopwords_are_lucenes_english_set() -> None:
    assert len(LUCENE_ENGLISH) == 33
    assert {"the", "and", "of", "is", "with", "will"} <= LUCENE_ENGLISH
    assert STOPWORD_LISTS["english"] is LUCENE_ENGLISH
    assert Analyzer().analyze(" ".join(sorted(LUCENE_ENGLISH))) == []
    # words outside Lucene's set stay (e.g. "were", "over", "about")
    assert Analyzer().analyze("were over about") == ["were", "over", "about"]


def test_lowercasing_happens_before_stopwords() -> None:
    assert Analyzer().analyze("THE Cat AND The DOG") == ["cat", "dog"]


def test_snowball_stemming() -> None:
    analyzer = Analyzer()
    assert analyzer.analyze("connections connected connecting") == ["connect"] * 3
    assert analyzer.analyze("retrieval retrieved") == ["retriev", "retriev"]
    assert analyzer.analyze("studies studying") == ["studi", "studi"]


def test_single_character_tokens_are_dropped_and_numbers_kept() -> None:
    assert Analyzer().analyze("a b c x y z 7 42 x1 i.e. U.S.") == ["42", "x1"]


def test_punctuation_splits_tokens_and_unicode_words_survive() -> None:
    assert Analyzer(stemmer=None).analyze("state-of-the-art, café; naïve... Zürich!") == [
        "state",
        "art",
        "café",
        "naïve",
        "zürich",
    ]


def test_repeats_and_order_are_kept() -> None:
    assert Analyzer().analyze("dog cat dog dog") == ["dog", "cat", "dog", "dog"]


def test_empty_inputs() -> None:
    analyzer = Analyzer()
    assert analyzer.analyze("") == []
    assert analyzer.analyze("   \n\t ") == []
    assert analyzer.analyze("the of and") == []
    assert analyzer.analyze_many([]) == []
    assert analyzer.analyze_many(["", "dog"]) == [[], ["dog"]]


def test_analyze_many_equals_analyze_per_text() -> None:
    texts = ["Running dogs", "the dog RUNS", "", "dogs and cats and running", "Connected"]
    analyzer = Analyzer()
    assert analyzer.analyze_many(texts) == [analyzer.analyze(t) for t in texts]


def test_custom_stopwords() -> None:
    analyzer = Analyzer(stopwords=("dog", "running"))
    # stopwords are removed before stemming: "running" goes, "runs" stays and is stemmed
    assert analyzer.analyze("the dog runs; running dogs") == ["the", "run", "dog"]
    # a list is accepted and stored as a sorted, de-duplicated tuple, so analyzers compare equal
    assert Analyzer(stopwords=["running", "dog", "dog"]) == analyzer
    assert analyzer.stopwords == ("dog", "running")
    assert hash(Analyzer(stopwords=["running", "dog"])) == hash(analyzer)


def test_empty_and_none_stopwords() -> None:
    text = "the cat is on a mat"
    assert Analyzer(stopwords="none").analyze(text) == ["the", "cat", "is", "on", "mat"]
    assert Analyzer(stopwords=()).analyze(text) == ["the", "cat", "is", "on", "mat"]


def test_no_stemmer() -> None:
    analyzer = Analyzer(stemmer=None)
    assert analyzer.analyze("The Runners were RUNNING quickly") == [
        "runners",
        "were",
        "running",
        "quickly",
    ]


def test_other_stemmers() -> None:
    assert Analyzer(stemmer="porter").analyze("generalization connections") == ["gener", "connect"]
    assert Analyzer(stopwords="none", stemmer="german").analyze("Häuser") == ["haus"]


def test_no_lowercasing() -> None:
    assert Analyzer(lowercase=False, stemmer=None).analyze("BM25 Okapi okapi") == [
        "BM25",
        "Okapi",
        "okapi",
    ]


def test_custom_token_pattern() -> None:
    analyzer = Analyzer(token_pattern=r"\S+", stopwords="none", stemmer=None)
    assert analyzer.analyze("a state-of-the-art model.") == ["a", "state-of-the-art", "model."]


def test_unknown_stemmer_lists_the_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown stemmer 'klingon'") as info:
        Analyzer(stemmer="klingon")
    message = str(info.value)
    assert "valid names:" in message
    for name in ("english", "porter", "german", "french"):
        assert name in message
    assert "english" in info.value.valid
    assert isinstance(info.value, ValueError)


def test_unknown_stopword_list_lists_the_names() -> None:
    with pytest.raises(
        UnknownNameError, match="unknown stopword list 'englsh'; valid names: english, none"
    ):
        Analyzer(stopwords="englsh")


def test_bad_token_pattern() -> None:
    with pytest.raises(InvalidInputError, match="token_pattern"):
        Analyzer(token_pattern="(unclosed")


@pytest.mark.parametrize(
    "analyzer",
    [
        Analyzer(),
        Analyzer(stopwords=("foo", "bar")),
        Analyzer(stopwords="none", stemmer=None),
        Analyzer(lowercase=False, stemmer="porter"),
        Analyzer(token_pattern=r"\w+", stopwords=()),
    ],
)
def test_config_round_trip(analyzer: Analyzer) -> None:
    config = analyzer.to_config()
    assert json.loads(json.dumps(config)) == config  # plain JSON values
    restored = Analyzer.from_config(json.loads(json.dumps(config)))
    assert restored == analyzer
    text = "The quick Foo jumped over 42 lazy bars"
    assert restored.analyze(text) == analyzer.analyze(text)


def test_from_config_rejects_unknown_keys() -> None:
    with pytest.raises(TypeError):
        Analyzer.from_config({"stemmer": None, "bogus": 1})


def test_bm25_uses_its_analyzer_and_reports_it_in_its_config() -> None:
    bm25 = BM25(analyzer={"stopwords": ["cat"], "stemmer": None})
    assert bm25.analyzer == Analyzer(stopwords=("cat",), stemmer=None)
    assert bm25.config()["analyzer"] == {
        "token_pattern": r"(?u)\b\w\w+\b",
        "lowercase": True,
        "stopwords": ["cat"],
        "stemmer": None,
    }
    bm25.add([Document(id="a", text="the cat"), Document(id="b", text="cats")])
    assert [h.id for h in bm25.search("the", k=5)] == ["a"]  # "the" is not a stopword here
    assert bm25.search("cat", k=5) == []  # "cat" is
    assert [h.id for h in bm25.search("cats", k=5)] == ["b"]  # and nothing is stemmed


def test_a_full_token_table_is_replaced_without_changing_results(monkeypatch) -> None:
    import rag_retrievers.encoders.analysis as analysis

    texts = [f"Running runners ran {i} races quickly" for i in range(50)] + ["the cats sat"]
    expected = Analyzer().analyze_many(texts)
    monkeypatch.setattr(analysis, "_MAX_CACHED_TOKENS", 8)
    small = Analyzer()
    for start in range(0, len(texts), 7):
        assert small.analyze_many(texts[start : start + 7]) == expected[start : start + 7]
    assert len(small._terms) <= 8 + 7 * 6


def test_concurrent_analysis_agrees_with_serial() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"word{i} stemming stemmed stems of token{i % 17} the end" for i in range(400)]
    expected = Analyzer().analyze_many(texts)
    shared = Analyzer()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: shared.analyze(t), texts))
    assert got == expected
