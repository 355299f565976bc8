"""Answer faithfulness: judges that score how far an answer is supported by its context, and
their calibration against human labels (``rag-retrievers eval faithfulness``)."""

from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    create_judge,
    judge_names,
    register_judge,
)

__all__ = [
    "ClaimEvidence",
    "FaithfulnessJudge",
    "JudgeResult",
    "create_judge",
    "judge_names",
    "register_judge",
]
