"""The labelled pair sets a faithfulness judge is selected on, by name, read from the shared
data folder (never copied into the project).

Three sets carry human labels as they are (``pairs.jsonl``: ``context``, ``response``,
``label``); two are derived from QA sets whose answers say, by construction, whether a passage
supports them:

- ``climate_fever``: ``faith_climate_fever/pairs.jsonl``, a claim against one Wikipedia evidence
  sentence, labelled by annotators (supports / refutes / not enough info).
- ``claim_verification``: ``scifact/claim_verification_pairs.jsonl``, a scientific claim against
  a paper's abstract (SciFact: supports / contradicts / not enough info).
- ``faithbench``: ``faith_faithbench/pairs.jsonl``, an LLM's summary of a short news-like
  passage, labelled consistent or not by annotators (no "not enough info").
- ``halueval_qa`` (derived): ``qa_hotpotqa_halueval500``. Each of the 500 HotpotQA questions
  has its knowledge (the gold passage, ``corpus.jsonl`` through ``gold_context_ids``), the right
  answer and a hallucinated one that HaluEval had ChatGPT write. Two pairs per question:
  (knowledge, right answer) labelled 1 (the knowledge holds the supporting facts of the right
  answer) and (knowledge, hallucinated answer) labelled 0. The response is the answer text
  alone, as the file gives it (often a bare name; the hallucinated one is more often a
  sentence); the question is not shown to the judge. Both pairs of a question share a group.
- ``rgb_counterfactual`` (derived): ``qa_rgb_en_fact/en_fact.json`` (RGB's counterfactual
  robustness set). Each of the 100 questions has its answer, passages that state it
  (``positive``) and the same passages with the answer replaced by a false one
  (``positive_wrong``). Pairs: (positive passage, answer) labelled 1 and (counterfactual
  passage, answer) labelled 0, one pair per passage. Where the answer is a list of spellings
  (dates) the response is the spelling found in most of the question's positive passages (the
  first on ties). All pairs of a question share a group.

Only the first three have "not enough info" labels, so only they have a second view
(supported vs contradicted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag_retrievers.evals.beir import read_jsonl
from rag_retrievers.evals.faithfulness.calibration import LabelledPair, read_pairs

from rag_retrievers.errors import InvalidInputError

DEFAULT_DATA = Path("../shared/data")


def _labelled_file(relative: str, name: str) -> Callable[[Path], list[LabelledPair]]:
    def load(root: Path) -> list[LabelledPair]:
        pairs = read_pairs(root / relative)
        return [
            LabelledPair(p.id, p.context, p.response, p.label, f"{name}:{p.group}", name)
            for p in pairs
        ]

    load.__doc__ = f"``{relative}`` as labelled."
    return load


def halueval_qa(root: Path) -> list[LabelledPair]:
    """Knowledge + right answer (1) and knowledge + hallucinated answer (0), per question."""
    folder = root / "qa_hotpotqa_halueval500"
    corpus = {
        str(row["_id"]): str(row.get("text", "")) for _, row in read_jsonl(folder / "corpus.jsonl")
    }
    pairs: list[LabelledPair] = []
    for _, row in read_jsonl(folder / "answers.jsonl"):
        qid = str(row["_id"])
        missing = [k for k in row["gold_context_ids"] if str(k) not in corpus]
        if missing:
            raise InvalidInputError(f"{folder}: question {qid} names unknown passages {missing}")
        knowledge = " ".join(corpus[str(k)] for k in row["gold_context_ids"])
        for suffix, answer, label in (
            ("right", row["answer"], 1),
            ("hallucinated", row["hallucinated_answer"], 0),
        ):
            pairs.append(
                LabelledPair(
                    id=f"halueval-{qid}-{suffix}",
                    context=knowledge,
                    response=str(answer).strip(),
                    label=label,
                    group=f"halueval_qa:{qid}",
                    dataset="halueval_qa",
                )
            )
    return pairs


def _spelling(answer: Any, passages: list[str]) -> str:
    """The answer as one string: for a list of spellings, the one most positive passages hold."""
    if isinstance(answer, str):
        return answer.strip()
    flat: list[str] = []
    for item in answer:
        flat.extend(item if isinstance(item, list) else [item])
    if not flat:
        raise InvalidInputError(f"an RGB answer with no spelling: {answer!r}")
    counts = [sum(s.lower() in p.lower() for p in passages) for s in flat]
    return str(flat[counts.index(max(counts))]).strip()


def rgb_counterfactual(root: Path) -> list[LabelledPair]:
    """The answer against each positive passage (1) and each counterfactual passage (0)."""
    path = root / "qa_rgb_en_fact" / "en_fact.json"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from None
    pairs: list[LabelledPair] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = json.loads(line)
        qid = str(row["id"])
        answer = _spelling(row["answer"], list(row["positive"]))
        for kind, passages, label in (
            ("positive", row["positive"], 1),
            ("counterfactual", row["positive_wrong"], 0),
        ):
            for i, passage in enumerate(passages):
                pairs.append(
                    LabelledPair(
                        id=f"rgb-{qid}-{kind}-{i}",
                        context=str(passage),
                        response=answer,
                        label=label,
                        group=f"rgb_counterfactual:{qid}",
                        dataset="rgb_counterfactual",
                    )
                )
        if not row["positive"] or not row["positive_wrong"]:
            raise InvalidInputError(f"{path}:{number}: a question without both kinds of passage")
    return pairs


#: set name -> builder reading it from the shared data folder
PAIR_SETS: dict[str, Callable[[Path], list[LabelledPair]]] = {
    "climate_fever": _labelled_file("faith_climate_fever/pairs.jsonl", "climate_fever"),
    "claim_verification": _labelled_file(
        "scifact/claim_verification_pairs.jsonl", "claim_verification"
    ),
    "faithbench": _labelled_file("faith_faithbench/pairs.jsonl", "faithbench"),
    "halueval_qa": halueval_qa,
    "rgb_counterfactual": rgb_counterfactual,
}


def load_pair_set(
    name_or_path: str, data: str | os.PathLike[str] = DEFAULT_DATA
) -> tuple[str, list[LabelledPair]]:
    """``(name, pairs)`` of a set named in :data:`PAIR_SETS` (read under ``data``) or of a
    labelled JSONL file (named by its parent folder and stem); groups are prefixed with the
    name, so two sets never share one."""
    if name_or_path in PAIR_SETS:
        root = Path(data)
        if not root.is_dir():
            raise InvalidInputError(f"the data folder {root} does not exist (pass --data DIR)")
        return name_or_path, PAIR_SETS[name_or_path](root)
    path = Path(name_or_path)
    if not path.is_file():
        raise InvalidInputError(
            f"{name_or_path!r} is neither a pair set ({', '.join(PAIR_SETS)}) nor a file"
        )
    name = f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    return name, [
        LabelledPair(p.id, p.context, p.response, p.label, f"{name}:{p.group}", p.dataset or name)
        for p in read_pairs(path)
    ]
