"""``nli``: claim-level entailment by any Hugging Face NLI or hallucination cross-encoder.

Each claim of the answer (see :func:`~rag_retrievers.evals.faithfulness.text.split_claims`) is
the hypothesis; the context, cut into chunks of whole sentences that fit the model's length
with the claim (neighbouring chunks overlap by one sentence), is the premise. A claim's score is
its best chunk's probability of the *supporting* label; the answer's is its weakest claim's.

Which output is "supporting" comes from the model config's ``id2label``: a label containing
``entail`` (MNLI-style models) or one of ``consistent``, ``supported``, ``faithful``,
``factual`` (hallucination detectors); a single-logit model's sigmoid is taken as the support
probability. ``support_label`` overrides the guess. Labels containing ``contradict``,
``hallucinat``, ``unsupported`` or ``refute`` flag a claim when they win.

No such weights exist on the project's machines: users pass a local folder or a hub id
(e.g. ``cross-encoder/nli-deberta-v3-small``); the tests use a tiny checkpoint they write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    register_judge,
)
from rag_retrievers.evals.faithfulness.text import split_claims, split_sentences

from rag_retrievers.errors import InvalidInputError, MissingDependencyError

SUPPORT_WORDS = ("entail", "consistent", "supported", "faithful", "factual")
AGAINST_WORDS = ("contradict", "hallucinat", "unsupported", "refute", "inconsistent")


def support_index(id2label: dict[int, str], override: str | None = None) -> int:
    """Index of the supporting label in ``id2label``; errors list the labels."""
    labels = {int(i): str(label) for i, label in id2label.items()}
    if override is not None:
        for i, label in labels.items():
            if label.lower() == override.lower():
                return i
        raise InvalidInputError(
            f"support_label {override!r} is not a label of the model: {sorted(labels.values())}"
        )
    for word in SUPPORT_WORDS:
        for i, label in sorted(labels.items()):
            low = label.lower()
            if word in low and not any(w in low for w in ("not", "non", "in" + word)):
                return i
    raise InvalidInputError(
        f"cannot tell which label means 'supported' among {sorted(labels.values())}; "
        "pass support_label"
    )


def against_indices(id2label: dict[int, str]) -> list[int]:
    return sorted(
        int(i)
        for i, label in id2label.items()
        if any(w in str(label).lower() for w in AGAINST_WORDS)
    )


def sentence_chunks(sentences: Sequence[str], lengths: Sequence[int], room: int) -> list[str]:
    """Consecutive ``sentences`` joined into chunks of at most ``room`` tokens (``lengths``: each
    sentence's); neighbouring chunks share one sentence; a sentence longer than ``room`` is a
    chunk of its own.

    >>> sentence_chunks(["A b.", "C d.", "E f."], [2, 2, 2], 4)
    ['A b. C d.', 'C d. E f.']
    """
    out: list[str] = []
    start = 0
    while start < len(sentences):
        end, used = start, 0
        while end < len(sentences) and (end == start or used + lengths[end] <= room):
            used += lengths[end]
            end += 1
        out.append(" ".join(sentences[start:end]))
        if end >= len(sentences):
            break
        start = end - 1 if end - 1 > start else end  # overlap by one sentence
    return out


@register_judge("nli")
class NLIJudge(FaithfulnessJudge):
    """Claim-level entailment with a sequence-classification cross-encoder.

    >>> judge = NLIJudge("cross-encoder/nli-deberta-v3-small")  # doctest: +SKIP
    >>> judge.judge("Paris is in France.", "Paris is in Spain.").claims[0].flags  # doctest: +SKIP
    ('contradiction: 0.97',)
    """

    default_threshold = 0.5

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        support_label: str | None = None,
        max_length: int = 512,
        batch_size: int = 16,
        device: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,  # accepted for the CLI; unused
    ) -> None:
        if model is None or not str(model).strip():
            raise InvalidInputError(
                "the nli judge needs model=PATH_OR_HUB_ID (an NLI or hallucination "
                "cross-encoder); e.g. --param model=cross-encoder/nli-deberta-v3-small"
            )
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 16:
            raise InvalidInputError(f"max_length must be an int >= 16, got {max_length!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.model_name = str(model)
        self.device = device
        self.batch_size = batch_size
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError:
            raise MissingDependencyError("transformers", "neural") from None
        path = Path(os.path.expanduser(self.model_name))
        local = path.is_dir()
        source = str(path) if local else self.model_name
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                source, local_files_only=local
            )
        except Exception as exc:  # OSError, ValueError, HTTP errors from the loaders
            raise InvalidInputError(
                f"cannot load NLI model {self.model_name!r} (a local folder or a hub id of a "
                f"sequence-classification model): {type(exc).__name__}: {exc}"
            ) from exc
        self.model.eval()
        if device is not None:
            self.model.to(device)
        self._torch = torch
        id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        self.single_logit = int(self.model.config.num_labels) == 1
        self.support = 0 if self.single_logit else support_index(id2label, support_label)
        self.against = [] if self.single_logit else against_indices(id2label)
        self.labels = id2label
        model_max = getattr(self.tokenizer, "model_max_length", max_length) or max_length
        self.max_length = int(min(max_length, model_max))

    def describe(self) -> str:
        label = "sigmoid" if self.single_logit else self.labels[self.support]
        return f"nli ({self.model_name}, support label {label!r}, max_length {self.max_length})"

    @cached_property
    def _special_tokens(self) -> int:
        return int(self.tokenizer.num_special_tokens_to_add(pair=True))

    def _length(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chunks(self, context: str, claim: str) -> list[str]:
        """The context in chunks of whole sentences that fit beside ``claim``; neighbours share
        one sentence. A single sentence longer than the room left is cut by the tokenizer."""
        sentences = split_sentences(context)
        room = self.max_length - self._special_tokens - self._length(claim)
        return sentence_chunks(sentences, [self._length(s) for s in sentences], room)

    def _probabilities(self, premises: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
        torch = self._torch
        rows = []
        for start in range(0, len(premises), self.batch_size):
            batch = self.tokenizer(
                list(premises[start : start + self.batch_size]),
                list(hypotheses[start : start + self.batch_size]),
                truncation="only_first",
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            if self.device is not None:
                batch = batch.to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits.float()
            p = torch.sigmoid(logits) if self.single_logit else torch.softmax(logits, dim=-1)
            rows.append(p.cpu().numpy().astype(np.float64))
        width = 1 if self.single_logit else len(self.labels)
        return np.concatenate(rows) if rows else np.empty((0, width))

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        jobs: list[tuple[int, int, str, str]] = []  # (pair, claim, premise, hypothesis)
        claims_of: list[list[str]] = []
        reasons: list[str | None] = []
        for p, (context, answer) in enumerate(pairs):
            claims = split_claims(answer)
            claims_of.append(claims)
            if not split_sentences(context):
                reasons.append("empty context")
                continue
            if not claims:
                reasons.append("no claims in the answer")
                continue
            reasons.append(None)
            for c, claim in enumerate(claims):
                for chunk in self.chunks(context, claim):
                    jobs.append((p, c, chunk, claim))
        probs = self._probabilities([j[2] for j in jobs], [j[3] for j in jobs])
        best: dict[tuple[int, int], tuple[float, str, float]] = {}
        for (p, c, chunk, _), row in zip(jobs, probs, strict=True):
            support = float(row[0] if self.single_logit else row[self.support])
            against = float(max((row[i] for i in self.against), default=0.0))
            if (p, c) not in best or support > best[(p, c)][0]:
                best[(p, c)] = (support, chunk, against)
        results = []
        for p, claims in enumerate(claims_of):
            reason = reasons[p]
            if reason is not None:
                results.append(JudgeResult.abstain(reason))
                continue
            evidence = []
            for c, claim in enumerate(claims):
                support, chunk, against = best[(p, c)]
                flags = (f"contradiction: {against:.2f}",) if against > support else ()
                evidence.append(ClaimEvidence(claim, chunk, support, flags))
            results.append(
                JudgeResult(score=min(e.score for e in evidence), claims=tuple(evidence))
            )
        return results

    def identity(self) -> dict[str, Any]:
        return {"model": self.model_name, "labels": self.labels, "max_length": self.max_length}
