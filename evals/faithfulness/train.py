"""Fine-tune a small encoder (MiniLM by default) as a cross-encoder (context, answer) ->
supported, on the CPU in bounded time, into a folder the ``nli`` judge loads
(``--param model=DIR``).

The model reads ``[CLS] context [SEP] answer [SEP]`` and gives one logit; its sigmoid is the
probability that the context supports the answer (``id2label`` is ``{0: "supported"}``, which
the ``nli`` judge takes as a single support logit). Training is plain binary cross-entropy with
AdamW, linear warm-up and decay, for a capped number of steps:

- **Which part of the context**: a context that does not fit beside the answer in
  ``max_length`` tokens is cut into chunks of whole sentences, as the ``nli`` judge cuts it at
  inference, and the chunk whose words cover most of the answer's (rarity-weighted) is the one
  trained on. The judge then takes each claim's best chunk and the answer's weakest claim.
- **Which pairs**: every set and both classes weigh the same. Each step draws a batch from the
  pairs with probabilities that give each dataset the same total and, within it, supported and
  unsupported answers (label 0 or null) half each, so climate_fever's 7,675 pairs do not drown
  the others and the model does not learn a dataset's base rate.
- **Determinism**: one seed drives the head's initialisation, the batches and dropout; the
  folder holds ``training.json`` (the settings, the data, the time taken).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rag_retrievers.evals.faithfulness.calibration import LabelledPair
from rag_retrievers.evals.faithfulness.claims import coverage, weighted_stems
from rag_retrievers.evals.faithfulness.nli import sentence_chunks
from rag_retrievers.evals.faithfulness.text import content_stems, split_sentences

from rag_retrievers.errors import InvalidInputError, MissingDependencyError
from rag_retrievers.spec import parse_params

SUPPORT_LABEL = "supported"


@dataclass(frozen=True)
class TrainConfig:
    """How a cross-encoder is fine-tuned; the defaults take about 15 minutes on 2 CPU cores."""

    model: str = "minilm"
    max_steps: int = 300
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup: float = 0.1  # share of the steps with a rising learning rate
    max_length: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
        if self.max_length < 16:
            raise InvalidInputError(f"max_length must be >= 16, got {self.max_length}")
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise InvalidInputError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not (0 <= self.warmup < 1):
            raise InvalidInputError(f"warmup must be in [0, 1), got {self.warmup!r}")


def train_config(steps: int, params: Sequence[str] = ()) -> TrainConfig:
    """The :class:`TrainConfig` of ``--steps`` and ``--train-param KEY=VALUE`` options.

    >>> train_config(5, ["batch_size=4"]).batch_size
    4
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError(f"--steps must be >= 1, got {steps!r}")
    options = parse_params(list(params))
    try:
        return TrainConfig(**{"max_steps": steps, **options})
    except TypeError as exc:
        raise InvalidInputError(f"bad --train-param: {exc}") from None


def sampling_weights(pairs: Sequence[LabelledPair]) -> np.ndarray:
    """Probability of drawing each pair: every dataset the same total, and within a dataset its
    supported and unsupported pairs half each (a dataset with one class only: all of it).

    >>> pairs = [LabelledPair(str(i), "c", "r", y, "g", d)
    ...          for i, (y, d) in enumerate([(1, "a"), (0, "a"), (0, "a"), (1, "b")])]
    >>> sampling_weights(pairs).round(3).tolist()
    [0.25, 0.125, 0.125, 0.5]
    """
    cells: dict[tuple[str, bool], int] = {}
    for p in pairs:
        key = (p.dataset, p.label == 1)
        cells[key] = cells.get(key, 0) + 1
    datasets = {d for d, _ in cells}
    weights = np.array(
        [
            1.0
            / len(datasets)
            / sum(1 for d, _ in cells if d == p.dataset)
            / cells[(p.dataset, p.label == 1)]
            for p in pairs
        ]
    )
    return np.asarray(weights / weights.sum())


def training_premise(context: str, answer: str, tokenizer: Any, max_length: int) -> str:
    """The context, or its chunk (as the ``nli`` judge cuts it) that covers most of the answer's
    words, weighted by rarity; the first such chunk on ties."""

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    room = max_length - int(tokenizer.num_special_tokens_to_add(pair=True)) - length(answer)
    if length(context) <= room:
        return context
    sentences = split_sentences(context)
    chunks = sentence_chunks(sentences, [length(s) for s in sentences], room)
    if not chunks:
        return context
    wanted = weighted_stems(answer)
    scores = [coverage(wanted, set(content_stems(c))) for c in chunks]
    return chunks[int(np.argmax(scores))]


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "neural") from None
    return torch, transformers


def _model_folder(name: str) -> str:
    from rag_retrievers.encoders.models import resolve_model

    return resolve_model(name, "dense").path


def train_cross_encoder(
    pairs: Sequence[LabelledPair],
    output: str | os.PathLike[str],
    config: TrainConfig = TrainConfig(),
    *,
    progress: bool | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    """Fine-tune ``config.model`` on ``pairs`` and save it to ``output``; returns what
    ``training.json`` in that folder records (settings, data, ``seconds``)."""
    pairs = list(pairs)
    y = np.array([float(p.label == 1) for p in pairs])
    if len(set(y.tolist())) < 2:
        raise InvalidInputError("training needs both supported and unsupported pairs")
    torch, transformers = _import_torch()
    from tqdm.auto import tqdm

    began = time.perf_counter()
    torch.manual_seed(config.seed)
    folder = _model_folder(config.model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the new head's "newly initialized" notice
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            folder,
            num_labels=1,
            id2label={0: SUPPORT_LABEL},
            label2id={SUPPORT_LABEL: 0},
            ignore_mismatched_sizes=True,  # a base that is a classifier already gets a new head
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    premises = [
        training_premise(p.context, p.response, tokenizer, config.max_length) for p in pairs
    ]
    rng = np.random.default_rng(config.seed)
    probabilities = sampling_weights(pairs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    warm = max(1, int(config.warmup * config.max_steps))

    def rate(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (config.max_steps - step) / max(1, config.max_steps - warm))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    losses: list[float] = []
    bar = tqdm(range(config.max_steps), desc="training", disable=progress is False, unit="step")
    for _ in bar:
        rows = rng.choice(len(pairs), size=config.batch_size, p=probabilities)
        batch = tokenizer(
            [premises[i] for i in rows],
            [pairs[i].response for i in rows],
            truncation=True,
            max_length=config.max_length,
            padding=True,
            return_tensors="pt",
        )
        logits = model(**batch).logits.squeeze(-1)
        target = torch.tensor(y[rows], dtype=logits.dtype)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    model.eval()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.model_max_length = config.max_length  # the judge cuts contexts as training did
    tokenizer.save_pretrained(out)
    counts: dict[str, dict[str, int]] = {}
    for p in pairs:
        cell = counts.setdefault(p.dataset or "?", {"supported": 0, "not": 0})
        cell["supported" if p.label == 1 else "not"] += 1
    record = {
        "kind": "cross-encoder (context, answer) -> supported",
        "config": asdict(config),
        "base_model": folder if config.model not in ("minilm",) else config.model,
        "pairs": counts,
        "sources": list(sources),
        "final_loss": round(float(np.mean(losses[-20:])), 4) if losses else math.nan,
        "seconds": round(time.perf_counter() - began, 1),
        "threads": int(torch.get_num_threads()),
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
