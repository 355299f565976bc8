"""Grid entries: the compact text form of a :class:`~rag_retrievers.spec.RetrieverSpec` that
``eval grid --grid``, ``eval tune-fusion --members`` and evaluation suites write.

- ``NAME``: a registered retriever (``bm25``);
- ``NAME/PRF``: wrapped in pseudo-relevance feedback (``bm25/rm3``);
- ``hybrid:M1+M2[+...][~FUSION[:NORMALIZATION]][/PRF]``: a Hybrid of registered members,
  optionally with a fusion (and, for the score fusions, a score normalisation) and PRF
  (``hybrid:bm25+dense~rrf``, ``hybrid:bm25+dense~combsum:z-score``).

>>> entry_name(parse_entry("hybrid: bm25 + bm25 ~ rrf / rm3"))
'hybrid:bm25+bm25~rrf/rm3'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.spec import RetrieverSpec, takes_model

__all__ = ["ENTRY_FORMS", "GridEntryError", "entry_name", "parse_entry", "parse_grid"]

ENTRY_FORMS = "NAME, NAME/PRF or hybrid:M1+M2[+...][~FUSION[:NORMALIZATION]][/PRF]"


class GridEntryError(InvalidInputError):
    """A ``--grid`` entry is malformed or names something unknown; the message quotes the entry
    (an unknown name's :class:`UnknownNameError`, listing the valid names, is its ``__cause__``)."""


# -- parsing -----------------------------------------------------------------------------------


def parse_entry(text: str, *, model: str | None = None) -> RetrieverSpec:
    """The :class:`RetrieverSpec` a grid entry describes (see the module docstring).

    ``model`` is the grid's ``--model``: one name for every retriever that takes a model, or
    ``MEMBER=NAME,...``; an entry gets the part that applies to it.
    """
    entry = text.strip()
    try:
        return _parse(entry, model)
    except InvalidInputError as exc:
        raise GridEntryError(f"--grid entry {entry!r}: {exc}") from exc


def _parse(entry: str, model: str | None) -> RetrieverSpec:
    if not entry:
        raise InvalidInputError(f"empty; expected {ENTRY_FORMS}")
    base, slash, prf = (part.strip() for part in entry.partition("/"))
    if slash:
        _check_prf(prf)
    name, colon, rest = (part.strip() for part in base.partition(":"))
    members: tuple[str, ...] = ()
    fusion = None
    params: dict[str, Any] = {}
    if colon:
        if name != "hybrid":
            raise InvalidInputError(f"only hybrid takes members (hybrid:M1+M2), not {name!r}")
        member_text, tilde, fusion_text = (part.strip() for part in rest.partition("~"))
        members = tuple(m.strip() for m in member_text.split("+"))
        if len(members) < 2 or not all(members):
            raise InvalidInputError("a hybrid needs two or more members: hybrid:M1+M2[+...]")
        if tilde:
            fusion, params = _parse_fusion(fusion_text)
    elif name == "hybrid":
        raise InvalidInputError("a hybrid needs members: hybrid:M1+M2[~FUSION]")
    elif name == "prf":
        raise InvalidInputError("write PRF as BASE/METHOD, e.g. bm25/rm3")
    elif not name or any(c in name for c in "+~/"):
        raise InvalidInputError(f"expected {ENTRY_FORMS}")
    entry_model = _hybrid_model(model, members) if members else _leaf_model(model, name)
    return RetrieverSpec(
        name=name, model=entry_model, members=members, fusion=fusion, prf=prf or None, params=params
    )


def _parse_fusion(text: str) -> tuple[str, dict[str, Any]]:
    """``FUSION[:NORMALIZATION]`` as the fusion's name and the Hybrid options it implies."""
    from rag_retrievers.scoring.fusion import check_params, fusion, normalization

    name, colon, normalization_name = (part.strip() for part in text.partition(":"))
    fusion(name)  # an unknown name lists the valid ones
    if not colon:
        return name, {}
    check_params(name, {"normalization": normalization_name})  # rrf takes none
    normalization(normalization_name)
    return name, {"normalization": normalization_name}


def _check_prf(method: str) -> None:
    from rag_retrievers.adapters.prf_passes import METHODS

    METHODS.get(method)  # an unknown name is refused, listing the valid ones


def _model_pairs(model: str) -> dict[str, str] | None:
    """``MEMBER=NAME,...`` as a dict; ``None`` for a plain model name."""
    if "=" not in model:
        return None
    pairs = {}
    for part in model.split(","):
        member, sep, name = (p.strip() for p in part.partition("="))
        if not sep or not member or not name:
            raise InvalidInputError(f"--model takes NAME or MEMBER=NAME,..., got {model!r}")
        pairs[member] = name
    return pairs


def _leaf_model(model: str | None, leaf: str) -> str | None:
    """The model of one plain retriever: the spec ``eval retrieval --retriever LEAF`` caches."""
    if model is None:
        return None
    pairs = _model_pairs(model)
    if pairs is None:
        return model if takes_model(leaf) else None
    return pairs.get(leaf)


def _hybrid_model(model: str | None, members: Sequence[str]) -> str | None:
    if model is None:
        return None
    pairs = _model_pairs(model)
    if pairs is None:
        return model if any(takes_model(m) for m in members) else None
    kept = [f"{m}={pairs[m]}" for m in dict.fromkeys(members) if m in pairs]
    return ",".join(kept) or None


def parse_grid(text: str, *, model: str | None = None) -> list[RetrieverSpec]:
    """The specs of a comma-separated grid; blank items are skipped, duplicates are an error."""
    specs: list[RetrieverSpec] = []
    seen: set[str] = set()
    for item in text.split(","):
        if not item.strip():
            continue
        spec = parse_entry(item, model=model)
        name = entry_name(spec)
        if name in seen:
            raise GridEntryError(f"--grid entry {item.strip()!r} is listed twice")
        seen.add(name)
        specs.append(spec)
    if not specs:
        raise InvalidInputError(f"--grid needs at least one entry: {ENTRY_FORMS}")
    if model is not None:
        leaves = {leaf for spec in specs for leaf in spec.members or (spec.name,)}
        pairs = _model_pairs(model)
        unused = sorted(set(pairs) - leaves) if pairs else []
        if unused or (pairs is None and not any(takes_model(leaf) for leaf in leaves)):
            raise InvalidInputError(
                f"--model names {', '.join(unused) or model!r}, which no grid entry takes "
                f"(entries use {', '.join(sorted(leaves))})"
            )
    return specs


def entry_name(spec: RetrieverSpec) -> str:
    """The grid entry that parses to ``spec``, in canonical form (no spaces)."""
    text = f"hybrid:{'+'.join(spec.members)}" if spec.members else spec.name
    if spec.fusion:
        text += f"~{spec.fusion}"
        if "normalization" in spec.params:
            text += f":{spec.params['normalization']}"
    if spec.prf:
        text += f"/{spec.prf}"
    return text
