"""Rank and score fusion: pure functions over ranked lists.

The one shape every function here takes is a mapping from a source name (a retriever, a run
file) to that source's **ranking**: a sequence of ``(doc_id, score)`` pairs, best first. Rank is
the 1-based position in the sequence; scores matter only to the score fusions. Every function
returns a new ranking of the same shape (``list[tuple[str, float]]``), best first, ties broken by
document id, and never changes its input.

``weights`` (a mapping from source name to a finite weight >= 0) is optional everywhere; a source
without a weight has weight 1 (for ``convex``: all sources share 1 equally). A weight of 0 removes
its source: a document only that source found does not appear in the output.

>>> bm25 = [("a", 12.0), ("b", 9.5), ("c", 3.0)]
>>> dense = [("b", 0.91), ("d", 0.80)]
>>> [doc for doc, _ in reciprocal_rank_fusion({"bm25": bm25, "dense": dense})]
['b', 'a', 'd', 'c']

Runs in the TREC format (``qid -> {doc_id: score}``, as
:func:`rag_retrievers.evals.retrieval.read_trec_run` returns them) fuse with :func:`fuse_runs`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.name_registry import Registry

#: best first: (document id, score)
Ranking = Sequence[tuple[str, float]]
#: source name -> ranking
Rankings = Mapping[str, Ranking]
#: query id -> document id -> score (a TREC run, as read_trec_run returns it)
Run = Mapping[str, Mapping[str, float]]

Normalization = Callable[[Sequence[float]], list[float]]
Fusion = Callable[..., list[tuple[str, float]]]

#: the score normalisations of the score fusions, by name
NORMALIZATIONS: Registry[Normalization] = Registry("normalization")
#: the fusions :class:`~rag_retrievers.adapters.hybrid.Hybrid` takes by name
FUSIONS: Registry[Fusion] = Registry("fusion")
register_normalization = NORMALIZATIONS.register
register_fusion = FUSIONS.register
#: the normalisation registered as a name; the error lists the valid names
normalization = NORMALIZATIONS.get
#: the fusion registered as a name; the error lists the valid names
fusion = FUSIONS.get


# -- normalisations ----------------------------------------------------------------------------


@register_normalization("none")
def no_normalization(scores: Sequence[float]) -> list[float]:
    """Scores as they are."""
    return [float(s) for s in scores]


@register_normalization("min-max")
def min_max(scores: Sequence[float]) -> list[float]:
    """``(s - min) / (max - min)`` per list (Lee 1997, "Analyses of multiple evidence
    combination", SIGIR; Fox & Shaw 1994 used the max). All-equal scores map to 1.

    >>> min_max([3.0, 2.0, 1.0])
    [1.0, 0.5, 0.0]
    """
    if not scores:
        return []
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


@register_normalization("z-score")
def z_score(scores: Sequence[float]) -> list[float]:
    """``(s - mean) / std`` per list, population std (Montague & Aslam 2001, "Relevance score
    normalization for metasearch", CIKM). All-equal scores map to 0.

    >>> z_score([3.0, 2.0, 1.0])  # mean 2, std sqrt(2/3)
    [1.224744871391589, 0.0, -1.224744871391589]
    """
    if not scores:
        return []
    if max(scores) == min(scores):  # tested exactly: a rounded mean makes a tiny nonzero std
        return [0.0] * len(scores)
    mean = math.fsum(scores) / len(scores)
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
    if std == 0:  # spreads below ~1e-160 underflow when squared: as good as equal
        return [0.0] * len(scores)
    return [(s - mean) / std for s in scores]


# -- helpers -----------------------------------------------------------------------------------


def _weights(rankings: Rankings, weights: Mapping[str, float] | None) -> dict[str, float]:
    """Validated weight per source; unknown names and negative or non-finite weights raise."""
    if weights is None:
        return dict.fromkeys(rankings, 1.0)
    if not isinstance(weights, Mapping):
        raise InvalidInputError(
            f"weights must be a mapping of source name to weight, got {type(weights).__name__}"
        )
    unknown = sorted(set(weights) - set(rankings))
    if unknown:
        raise InvalidInputError(
            f"weights name unknown source {unknown[0]!r}; sources: {', '.join(sorted(rankings))}"
        )
    out = {}
    for name in rankings:
        w = weights.get(name, 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise InvalidInputError(f"weight of {name!r} must be a finite number >= 0, got {w!r}")
        out[name] = float(w)
    return out


def _check_ranking(name: str, ranking: Ranking) -> None:
    seen: set[str] = set()
    for item in ranking:
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InvalidInputError(f"ranking {name!r} holds {item!r}, not a (doc_id, score) pair")
        doc, score = item
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise InvalidInputError(f"ranking {name!r}: score of {doc!r} is not a number")
        if doc in seen:
            raise InvalidInputError(f"ranking {name!r} lists document {doc!r} twice")
        seen.add(doc)


def _ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """Best first; ties by document id, so results are deterministic."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _sums(parts: Mapping[str, list[float]]) -> dict[str, float]:
    """Exactly rounded sums (``math.fsum``): the result does not depend on the sources' order."""
    return {doc: math.fsum(values) for doc, values in parts.items()}


def _active(rankings: Rankings, weights: Mapping[str, float] | None) -> dict[str, float]:
    for name, ranking in rankings.items():
        _check_ranking(name, ranking)
    return {name: w for name, w in _weights(rankings, weights).items() if w > 0}


# -- fusions -----------------------------------------------------------------------------------


@register_fusion("rrf")
def reciprocal_rank_fusion(
    rankings: Rankings, weights: Mapping[str, float] | None = None, *, k: float = 60
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: ``score(d) = sum_i w_i / (k + rank_i(d))`` over the rankings that
    contain ``d`` (Cormack, Clarke & Büttcher 2009, "Reciprocal rank fusion outperforms Condorcet
    and individual rank learning methods", SIGIR; weights as in ranx's ``rrf``).

    >>> reciprocal_rank_fusion({"a": [("x", 5.0), ("y", 1.0)], "b": [("y", 0.9)]}, k=0)
    [('y', 1.5), ('x', 1.0)]
    """
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k < 0:
        raise InvalidInputError(f"k (the RRF constant) must be a finite number >= 0, got {k!r}")
    parts: dict[str, list[float]] = {}
    for name, w in _active(rankings, weights).items():
        for rank, (doc, _) in enumerate(rankings[name], 1):
            parts.setdefault(doc, []).append(w / (k + rank))
    return _ranked(_sums(parts))


def _normalised(rankings: Rankings, name: str, method: str) -> dict[str, float]:
    ranking = rankings[name]
    values = normalization(method)([float(s) for _, s in ranking])
    return {doc: v for (doc, _), v in zip(ranking, values, strict=True)}


@register_fusion("combsum")
def comb_sum(
    rankings: Rankings,
    weights: Mapping[str, float] | None = None,
    *,
    normalization: str = "min-max",
) -> list[tuple[str, float]]:
    """CombSUM: ``score(d) = sum_i w_i * norm_i(d)`` over the rankings that contain ``d``; a
    ranking that does not contain ``d`` adds nothing (Fox & Shaw 1994, "Combination of multiple
    searches", TREC-2).

    >>> comb_sum({"a": [("x", 4.0), ("y", 2.0)], "b": [("y", 1.0), ("z", 0.0)]})
    [('x', 1.0), ('y', 1.0), ('z', 0.0)]
    """
    normalization_name = _check_normalization(normalization)
    parts: dict[str, list[float]] = {}
    for name, w in _active(rankings, weights).items():
        for doc, value in _normalised(rankings, name, normalization_name).items():
            parts.setdefault(doc, []).append(w * value)
    return _ranked(_sums(parts))


@register_fusion("combmnz")
def comb_mnz(
    rankings: Rankings,
    weights: Mapping[str, float] | None = None,
    *,
    normalization: str = "min-max",
) -> list[tuple[str, float]]:
    """CombMNZ: CombSUM times the number of (non-zero weight) rankings that contain ``d``
    (Fox & Shaw 1994).

    >>> comb_mnz({"a": [("x", 4.0), ("y", 2.0)], "b": [("y", 1.0), ("z", 0.0)]})
    [('y', 2.0), ('x', 1.0), ('z', 0.0)]
    """
    normalization_name = _check_normalization(normalization)
    parts: dict[str, list[float]] = {}
    for name, w in _active(rankings, weights).items():
        for doc, value in _normalised(rankings, name, normalization_name).items():
            parts.setdefault(doc, []).append(w * value)
    return _ranked({doc: s * len(parts[doc]) for doc, s in _sums(parts).items()})


@register_fusion("convex")
def convex_combination(
    rankings: Rankings,
    weights: Mapping[str, float] | None = None,
    *,
    normalization: str = "min-max",
) -> list[tuple[str, float]]:
    """Convex combination ``score(d) = sum_i w_i * norm_i(d)`` with ``sum_i w_i = 1`` (a
    ranking without ``d`` contributes 0); weights default to ``1/n`` each and must otherwise sum
    to 1 (Bruch, Gai & Ingber 2023, "An analysis of fusion functions for hybrid retrieval", TOIS).

    >>> convex_combination({"a": [("x", 4.0), ("y", 2.0)], "b": [("y", 1.0), ("z", 0.0)]},
    ...                    {"a": 0.75, "b": 0.25})
    [('x', 0.75), ('y', 0.25), ('z', 0.0)]
    """
    if weights is None:
        weights = dict.fromkeys(rankings, 1.0 / len(rankings)) if rankings else {}
    else:
        total = math.fsum(_weights(rankings, weights).values())
        if abs(total - 1.0) > 1e-6:
            raise InvalidInputError(
                f"convex combination weights must sum to 1, got {dict(weights)} (sum {total:g})"
            )
    return comb_sum(rankings, weights, normalization=normalization)


def _check_normalization(name: str) -> str:
    normalization(name)  # raises, listing the valid names
    return name


# -- entry points ------------------------------------------------------------------------------


def fuse(
    rankings: Rankings,
    method: str = "rrf",
    *,
    weights: Mapping[str, float] | None = None,
    **params: Any,
) -> list[tuple[str, float]]:
    """Fuse ``rankings`` with the fusion registered as ``method`` (see :data:`FUSIONS`);
    ``params`` are that fusion's keyword arguments (``k`` for ``rrf``, ``normalization`` for the
    score fusions).

    >>> fuse({"a": [("x", 1.0)], "b": [("x", 3.0), ("y", 2.0)]}, "combmnz", normalization="none")
    [('x', 8.0), ('y', 2.0)]
    """
    fn = fusion(method)
    check_params(method, params)
    return fn(rankings, weights, **params)


def check_params(method: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInputError` naming the fusion's options if ``params`` has others."""
    accepted = [
        p.name
        for p in inspect.signature(fusion(method)).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise InvalidInputError(
            f"fusion {method!r} has no option {unknown[0]!r}; its options: "
            f"{', '.join(accepted) or '(none)'}"
        )


def ranking_from_scores(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """A ``doc_id -> score`` mapping (one query of a TREC run) as a ranking: score descending,
    ties by document id."""
    return _ranked(scores)


def fuse_runs(
    runs: Mapping[str, Run],
    method: str = "rrf",
    *,
    weights: Mapping[str, float] | None = None,
    depth: int | None = None,
    **params: Any,
) -> dict[str, dict[str, float]]:
    """Fuse whole runs offline: ``runs`` maps a run name to ``qid -> {doc_id: score}`` (what
    :func:`~rag_retrievers.evals.retrieval.read_trec_run` returns). Each query's documents are
    ranked by score (ties by id), cut to ``depth`` if given, and fused; a query missing from a run
    fuses the others. Returns a run of the same shape, in fused order.

    >>> fuse_runs({"a": {"q1": {"x": 2.0, "y": 1.0}}, "b": {"q1": {"y": 5.0}}}, k=0)
    {'q1': {'y': 1.5, 'x': 1.0}}
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise InvalidInputError(f"depth must be None or an int >= 1, got {depth!r}")
    fusion(method)
    check_params(method, params)
    qids = list(dict.fromkeys(q for run in runs.values() for q in run))
    fused: dict[str, dict[str, float]] = {}
    for qid in qids:
        rankings = {
            name: ranking_from_scores(run.get(qid, {}))[:depth] for name, run in runs.items()
        }
        fused[qid] = dict(fuse(rankings, method, weights=weights, **params))
    return fused
