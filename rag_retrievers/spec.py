"""A retriever described by name, as the command line and config files describe one.

``RetrieverSpec(name="hybrid", members=("bm25", "dense"), fusion="rrf", prf="rm3")`` builds
``PRF(Hybrid([BM25(), Dense(model=...)], fusion="rrf"), method="rm3")``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rag_retrievers.base import Retriever
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.registry import retriever_class


@dataclass(frozen=True)
class RetrieverSpec:
    """What to build: a registered name, its model and options, members, fusion and PRF.

    ``model`` is one name for every member that takes a model, or ``member=name`` pairs
    separated by commas (``"dense=minilm,splade=splade-tiny"``).
    """

    name: str
    model: str | None = None
    members: tuple[str, ...] = ()
    fusion: str | None = None
    prf: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        retriever_class(self.name)  # unknown names fail here, listing the valid ones
        if self.members and self.name != "hybrid":
            raise InvalidInputError("--members applies to --retriever hybrid only")
        if self.name == "hybrid" and len(self.members) < 2:
            raise InvalidInputError("--retriever hybrid needs --members with two or more names")
        if self.fusion is not None and self.name != "hybrid":
            raise InvalidInputError("--fusion applies to --retriever hybrid only")
        for member in self.members:
            if member in ("hybrid", "prf"):
                raise InvalidInputError(f"a hybrid member cannot be {member!r}")
            retriever_class(member)
        if self.model is not None:
            takers = [n for n in self.members or (self.name,) if takes_model(n)]
            if not takers:
                raise InvalidInputError(f"--model: {self.name} takes no model")
            for member in self._models():
                if member not in takers:
                    raise InvalidInputError(
                        f"--model names {member!r}, which is not a member taking a model "
                        f"({', '.join(takers)})"
                    )

    def _models(self) -> dict[str, str]:
        """member name -> model name, from ``model``."""
        if self.model is None:
            return {}
        if "=" not in self.model:
            members = self.members or (self.name,)
            return {m: self.model for m in members if takes_model(m)}
        pairs = {}
        for part in self.model.split(","):
            member, sep, model = part.partition("=")
            if not sep or not member or not model:
                raise InvalidInputError(
                    f"--model takes NAME or MEMBER=NAME,..., got {self.model!r}"
                )
            pairs[member.strip()] = model.strip()
        return pairs

    def leaves(self) -> list[RetrieverSpec]:
        """The plain retrievers this spec wraps (its hybrid members, or itself without PRF):
        what gets indexed. ``hybrid:bm25+dense/rm3`` indexes a BM25 and a dense retriever."""
        models = self._models()
        if self.name == "hybrid":
            return [RetrieverSpec(name=m, model=models.get(m)) for m in self.members]
        return [RetrieverSpec(name=self.name, model=models.get(self.name), params=self.params)]

    def assemble(self, leaves: Sequence[Retriever]) -> Retriever:
        """This spec's retriever around ``leaves``, built or opened from :meth:`leaves`: the
        hybrid and PRF wrappers hold no index of their own, so they are cheap to rebuild."""
        if len(leaves) != len(self.leaves()):
            raise InvalidInputError(f"{self.label()} wraps {len(self.leaves())} retrievers")
        if self.name == "hybrid":
            options = dict(self.params)
            if self.fusion is not None:
                options["fusion"] = self.fusion
            retriever = _create("hybrid", {"retrievers": list(leaves), **options})
        else:
            retriever = leaves[0]
        if self.prf is not None:
            retriever = _create("prf", {"base": retriever, "method": self.prf})
        return retriever

    def build(self) -> Retriever:
        return self.assemble([_create(leaf.name, leaf._options()) for leaf in self.leaves()])

    def _options(self) -> dict[str, Any]:
        """A plain spec's constructor options: its params, and its model if it takes one."""
        return {**self.params, **({} if self.model is None else {"model": self.model})}

    def label(self) -> str:
        """A short, file-name-safe name: ``bm25``, ``hybrid-bm25+dense-rrf``, ``bm25-rm3``."""
        parts = [self.name]
        if self.members:
            parts.append("+".join(self.members))
        if self.fusion:
            parts.append(self.fusion)
        if self.fusion and "normalization" in self.params:
            parts.append(str(self.params["normalization"]))
        if self.prf:
            parts.append(self.prf)
        return "-".join(parts)

    def fingerprint(self) -> str:
        """A digest of everything that changes what gets indexed."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``--param KEY=VALUE`` options as a dict; VALUE is read as JSON, else kept as a string.

    >>> parse_params(["k1=1.2", "variant=okapi", 'weights=[1, 0.5]'])
    {'k1': 1.2, 'variant': 'okapi', 'weights': [1, 0.5]}
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param takes KEY=VALUE, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def takes_model(name: str) -> bool:
    return "model" in inspect.signature(retriever_class(name)).parameters


def _create(name: str, options: dict[str, Any]) -> Retriever:
    try:
        return retriever_class(name)(**options)
    except TypeError as exc:
        raise InvalidInputError(f"bad options for {name}: {exc}") from None
