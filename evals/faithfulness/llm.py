"""``llm``: a RAGAS-style judge through any generator of the generator protocol.

Two steps, each a prompt file in ``prompts/``: the generator breaks the answer into claims
(``extract_claims.txt``; or the answer's sentences with ``claims="sentences"``), then gives a
verdict per claim against the context (``verify_claims.txt``): supported, contradicted or
unsupported. The score is the share of supported claims (RAGAS faithfulness).

- **Structured output.** With ``structured="auto"`` the judge asks for JSON matching a schema
  through the ``json_schema`` generation parameter (llama.cpp: a grammar; OpenAI-compatible
  servers: ``response_format``); a generator that rejects the
  parameter is asked again without it, and from then on never with it. Replies are parsed
  robustly either way: code fences, text around the JSON, trailing commas, single verdict words.
- **Cache.** Every generator reply is kept as a JSON file under ``cache_dir/llm/``, keyed by the
  sha256 of the judge, the prompt template, the generator's identity (its ``repr``), the
  generation parameters and the inputs: a re-run costs no generator call.
- **Abstaining.** A generator error or an unreadable reply makes the judge abstain for that pair
  and say why; it never guesses.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag_retrievers.evals.faithfulness.base import (
    ClaimEvidence,
    FaithfulnessJudge,
    JudgeResult,
    register_judge,
)
from rag_retrievers.evals.faithfulness.embeddings import atomic_write_bytes, stable_digest
from rag_retrievers.evals.faithfulness.text import split_claims, split_sentences

from rag_retrievers.errors import InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.generators.base import Generator

VERDICTS = ("supported", "contradicted", "unsupported")
VERDICT_SCORE = {"supported": 1.0, "contradicted": 0.0, "unsupported": 0.0}

CLAIMS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"claims": {"type": "array", "items": {"type": "string"}}},
    "required": ["claims"],
}
VERDICTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdicts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "claim": {"type": "integer"},
                    "verdict": {"type": "string", "enum": list(VERDICTS)},
                    "reason": {"type": "string"},
                },
                "required": ["claim", "verdict"],
            },
        }
    },
    "required": ["verdicts"],
}


def verdicts_schema(n_claims: int) -> dict[str, Any]:
    """:data:`VERDICTS_SCHEMA` with exactly ``n_claims`` verdicts: a grammar-constrained small
    model otherwise stops after the first (as the prompt's one-item example shows)."""
    verdicts = {**VERDICTS_SCHEMA["properties"]["verdicts"], "minItems": n_claims}
    verdicts["maxItems"] = n_claims
    return {**VERDICTS_SCHEMA, "properties": {"verdicts": verdicts}}


def load_prompt(name: str) -> str:
    """A prompt template shipped in the package's ``prompts/`` folder."""
    return (resources.files("rag_retrievers.evals.faithfulness") / "prompts" / name).read_text(
        encoding="utf-8"
    )


def fill(template: str, **values: str) -> str:
    """``template`` with ``{name}`` replaced; other braces (the JSON examples) stay as they are."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out


class UnreadableReply(ValueError):
    """A generator reply holds none of what was asked for."""


def _json_candidates(text: str) -> list[str]:
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    out = [*fenced, text]
    for opener, closer in (("{", "}"), ("[", "]")):
        start = text.find(opener)
        end = text.rfind(closer)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return out


def parse_json(text: str) -> Any:
    """The first JSON value found in ``text`` (fences, surrounding prose and trailing commas
    tolerated); :class:`UnreadableReply` if there is none."""
    for candidate in _json_candidates(text):
        for attempt in (candidate, re.sub(r",\s*([}\]])", r"\1", candidate)):
            try:
                return json.loads(attempt.strip())
            except json.JSONDecodeError:
                continue
    raise UnreadableReply(f"no JSON in the reply: {text[:80]!r}")


def parse_claims(text: str) -> list[str]:
    """Claims from an extraction reply: ``{"claims": [...]}``, a bare list, or numbered lines."""
    try:
        value = parse_json(text)
    except UnreadableReply:
        value = None
    if isinstance(value, dict):
        value = value.get("claims")
    if isinstance(value, list):
        claims = [str(c).strip() for c in value if isinstance(c, str | int | float)]
        claims = [c for c in claims if c]
        if claims:
            return claims
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip() for line in text.splitlines()]
    claims = [line for line in lines if len(line.split()) >= 3 and not line.startswith(("{", "["))]
    if not claims:
        raise UnreadableReply(f"no claims in the reply: {text[:80]!r}")
    return claims


def _verdict_word(value: object) -> str | None:
    low = str(value).lower()
    for word, verdict in (
        ("contradict", "contradicted"),
        ("unsupported", "unsupported"),
        ("not supported", "unsupported"),
        ("not enough", "unsupported"),
        ("support", "supported"),
        ("yes", "supported"),
        ("no", "unsupported"),
    ):
        if re.search(rf"\b{word}", low):
            return verdict
    return None


def parse_verdicts(text: str, n_claims: int) -> list[str]:
    """One verdict per claim from a verification reply.

    Reads ``{"verdicts": [{"claim": i, "verdict": ...}]}`` (or a bare list), placing verdicts by
    their claim number when given, else in order; without JSON, one verdict word per line. A
    claim left without a verdict makes the reply unreadable: the judge never fills gaps.
    """
    try:
        value = parse_json(text)
    except UnreadableReply:
        value = None
    if isinstance(value, dict):
        value = value.get("verdicts", value.get("results"))
    found: list[str | None] = [None] * n_claims
    if isinstance(value, list):
        for position, item in enumerate(value):
            verdict = _verdict_word(item.get("verdict") if isinstance(item, dict) else item)
            index = position
            if isinstance(item, dict) and isinstance(item.get("claim"), int):
                index = int(item["claim"]) - 1
            if verdict is not None and 0 <= index < n_claims and found[index] is None:
                found[index] = verdict
    if any(v is None for v in found):
        words = [_verdict_word(line) for line in text.splitlines()]
        in_order = [w for w in words if w is not None]
        if value is None and len(in_order) >= n_claims:
            found = list(in_order[:n_claims])
    if any(v is None for v in found):
        raise UnreadableReply(f"a verdict for each of {n_claims} claims is missing: {text[:80]!r}")
    return [str(v) for v in found]


@register_judge("llm")
class LLMJudge(FaithfulnessJudge):
    """Claims extracted and verified by a generator (RAGAS faithfulness).

    ``generator``: a :class:`~rag_retrievers.generators.base.Generator`, or anything
    ``--generator`` accepts (a registered name, a URL, a ``.gguf`` path, ``smollm2``).

    >>> judge = LLMJudge("smollm2", cache_dir="runs/faithfulness-cache")  # doctest: +SKIP
    >>> judge.judge("Paris is in France.", "Paris is in Spain.").score  # doctest: +SKIP
    0.0
    """

    default_threshold = 0.5

    def __init__(
        self,
        generator: Generator | str | None = None,
        *,
        claims: Literal["llm", "sentences"] = "llm",
        structured: Literal["auto", "never"] = "auto",
        max_tokens: int = 512,
        max_context_chars: int = 6000,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from rag_retrievers.generators.registry import resolve_generator

        if claims not in ("llm", "sentences"):
            raise InvalidInputError(f"claims must be 'llm' or 'sentences', got {claims!r}")
        if structured not in ("auto", "never"):
            raise InvalidInputError(f"structured must be 'auto' or 'never', got {structured!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInputError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
        self.generator = resolve_generator(generator)
        self.claims_mode = claims
        self.structured_mode = structured
        self.structured = structured == "auto"  # until the generator refuses a schema
        self.max_tokens = max_tokens
        self.max_context_chars = max_context_chars
        self.cache_dir = Path(cache_dir) / "llm" if cache_dir is not None else None
        self.prompts = {
            "extract": load_prompt("extract_claims.txt"),
            "verify": load_prompt("verify_claims.txt"),
        }
        self.generator_calls = 0
        self.cache_hits = 0

    def describe(self) -> str:
        return f"llm ({self.generator!r}, claims by {self.claims_mode}, RAGAS-style verdicts)"

    # -- one generator call, cached ------------------------------------------------------------

    def _ask(self, step: str, prompt: str, schema: dict[str, Any]) -> str:
        params: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": 0.0}
        key = stable_digest(
            {
                "judge": self.name,
                "step": step,
                "template": self.prompts[step],
                "generator": repr(self.generator),
                "params": params,
                # the schema asked for, whether or not this generator takes it: a generator
                # (its repr above) refuses it every time or never
                "json_schema": schema if self.structured_mode == "auto" else None,
                "prompt": prompt,
            }
        )
        path = self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir is not None else None
        if path is not None and path.exists():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(cached, dict) and isinstance(cached.get("reply"), str):
                    self.cache_hits += 1
                    return str(cached["reply"])
            except (OSError, json.JSONDecodeError):
                pass  # a damaged entry is asked again
        reply = self._generate(prompt, params, schema)
        if path is not None:
            entry = {"step": step, "generator": repr(self.generator), "reply": reply}
            atomic_write_bytes(path, json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        return reply

    def _generate(self, prompt: str, params: dict[str, Any], schema: dict[str, Any]) -> str:
        if self.structured:
            try:
                self.generator_calls += 1
                return self.generator.generate(prompt, json_schema=schema, **params)
            except InvalidInputError as exc:
                if "json_schema" not in str(exc):
                    raise
                self.structured = False  # this backend takes no schema: plain JSON prompts
        self.generator_calls += 1
        return self.generator.generate(prompt, **params)

    # -- judging -------------------------------------------------------------------------------

    def _claims(self, answer: str) -> list[str]:
        if self.claims_mode == "sentences":
            return split_claims(answer)
        reply = self._ask("extract", fill(self.prompts["extract"], answer=answer), CLAIMS_SCHEMA)
        return parse_claims(reply)

    def _judge_one(self, context: str, answer: str) -> JudgeResult:
        from rag_retrievers.generators.base import GeneratorError

        if not split_sentences(context):
            return JudgeResult.abstain("empty context")
        if not split_claims(answer):
            return JudgeResult.abstain("no claims in the answer")
        try:
            claims = self._claims(answer)
            numbered = "\n".join(f"{i}. {c}" for i, c in enumerate(claims, 1))
            prompt = fill(
                self.prompts["verify"],
                context=context[: self.max_context_chars],
                claims=numbered,
            )
            schema = verdicts_schema(len(claims))
            verdicts = parse_verdicts(self._ask("verify", prompt, schema), len(claims))
        except GeneratorError as exc:
            return JudgeResult.abstain(f"generator failed: {type(exc).__name__}: {exc}")
        except UnreadableReply as exc:
            return JudgeResult.abstain(f"unreadable generator reply: {exc}")
        evidence = tuple(
            ClaimEvidence(
                claim=c,
                span="",
                score=VERDICT_SCORE[v],
                flags=() if v == "supported" else (f"verdict: {v}",),
            )
            for c, v in zip(claims, verdicts, strict=True)
        )
        score = sum(e.score for e in evidence) / len(evidence)
        return JudgeResult(score=score, claims=evidence)

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        from rag_retrievers.progress import progress_bar

        bar = progress_bar(len(pairs), "judging", "pair", progress)
        results = []
        try:
            for context, answer in pairs:
                results.append(self._judge_one(context, answer))
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return results
