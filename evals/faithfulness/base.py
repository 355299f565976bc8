"""The faithfulness judge interface: ``judge(context, answer) -> JudgeResult``, judges registered
by name.

A judge scores how far ``answer`` is supported by ``context``: 1 fully supported, 0 not at all.
Scores are always finite and in [0, 1]. Where a judge cannot decide (no claims in the answer, an
empty context, a model or generator that failed) it *abstains*: the score is the neutral 0.5 and
``abstained`` says why, so an evaluation can count and exclude those pairs.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.name_registry import Registry

ABSTAIN_SCORE = 0.5


@dataclass(frozen=True)
class ClaimEvidence:
    """One claim of an answer and what the judge found for it in the context.

    ``flags`` name what contradicts or fails to support the claim, e.g.
    ``"number: 12 not in span"`` or ``"negation"``.
    """

    claim: str
    span: str
    score: float
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "span": self.span, "score": self.score, "flags": self.flags}


@dataclass(frozen=True)
class JudgeResult:
    """A judge's verdict on one (context, answer) pair.

    >>> JudgeResult.abstain("empty context").score
    0.5
    """

    score: float
    claims: tuple[ClaimEvidence, ...] = ()
    abstained: str | None = None
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.score, (int, float)) or not math.isfinite(self.score):
            raise InvalidInputError(f"a judge score must be a finite number, got {self.score!r}")
        object.__setattr__(self, "score", min(1.0, max(0.0, float(self.score))))

    @classmethod
    def abstain(cls, reason: str, claims: Sequence[ClaimEvidence] = ()) -> JudgeResult:
        return cls(score=ABSTAIN_SCORE, claims=tuple(claims), abstained=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "abstained": self.abstained,
            "claims": [c.to_dict() for c in self.claims],
            "details": dict(self.details),
        }


def check_pair(context: object, answer: object) -> None:
    for name, value in (("context", context), ("answer", answer)):
        if not isinstance(value, str):
            raise InvalidInputError(f"{name} must be a str, got {type(value).__name__}")


class FaithfulnessJudge(ABC):
    """Base class: a judge implements :meth:`judge_batch`; :meth:`judge` is one pair of it.

    ``default_threshold`` is the score at or above which the judge calls an answer supported.
    """

    name: ClassVar[str] = ""
    default_threshold: float = 0.5  # a class default; a judge may set its own per instance

    def judge(self, context: str, answer: str) -> JudgeResult:
        return self.judge_batch([(context, answer)], progress=False)[0]

    def judge_batch(
        self, pairs: Sequence[tuple[str, str]], *, progress: bool | None = None
    ) -> list[JudgeResult]:
        """Verdicts for many pairs at once: judges batch the expensive work (embedding every
        sentence once, one model call per batch)."""
        pairs = list(pairs)
        for context, answer in pairs:
            check_pair(context, answer)
        return self._judge_batch(pairs, progress)

    @abstractmethod
    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]: ...

    def describe(self) -> str:
        """One line saying what the judge is (its name and settings), for reports."""
        return self.name


J = TypeVar("J", bound=type[FaithfulnessJudge])

_JUDGES: Registry[type[FaithfulnessJudge]] = Registry(
    "faithfulness judge",
    {
        "baseline": "rag_retrievers.evals.faithfulness.baseline:BaselineJudge",
        "offline": "rag_retrievers.evals.faithfulness.offline:OfflineJudge",
        "nli": "rag_retrievers.evals.faithfulness.nli:NLIJudge",
        "llm": "rag_retrievers.evals.faithfulness.llm:LLMJudge",
    },
)
DEFAULT_JUDGE = "offline"


def register_judge(name: str) -> Callable[[J], J]:
    """Class decorator: make a judge creatable by ``name``."""

    def decorate(cls: J) -> J:
        cls.name = name
        _JUDGES.register(name, cls)
        return cls

    return decorate


def judge_names() -> list[str]:
    return _JUDGES.names()


def judge_class(name: str) -> type[FaithfulnessJudge]:
    """The judge class registered as ``name``; :class:`UnknownNameError` lists the valid names."""
    return _JUDGES.get(name)


def create_judge(name: str, **options: Any) -> FaithfulnessJudge:
    """A judge by registered name, e.g. ``create_judge("baseline")``."""
    return judge_class(name)(**options)
