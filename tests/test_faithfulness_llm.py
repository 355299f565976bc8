"""The LLM judge against a scripted generator of the generator protocol, and (slow) SmolLM2."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rag_retrievers.evals.faithfulness.llm import (
    LLMJudge,
    UnreadableReply,
    load_prompt,
    parse_claims,
    parse_json,
    parse_verdicts,
)

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators.base import (
    COMMON_PARAMS,
    Generator,
    GeneratorBase,
    GeneratorError,
    check_params,
    to_messages,
)

CONTEXT = "Lyon recorded 312 heatwave deaths in 2019. Hospital admissions increased."


class ScriptedGenerator(GeneratorBase):
    """Answers the judge's two prompts from a script; counts calls; optionally takes a schema."""

    def __init__(
        self,
        verdict: Callable[[str], str] = lambda claim: "supported",
        *,
        takes_schema: bool = False,
        wrap: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.verdict, self.takes_schema, self.wrap = verdict, takes_schema, wrap
        self.calls: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"ScriptedGenerator(takes_schema={self.takes_schema})"

    def generate(self, prompt_or_messages: Any, **params: Any) -> str:
        allowed = COMMON_PARAMS | ({"json_schema"} if self.takes_schema else set())
        check_params(params, allowed)  # rejects json_schema like the real backends do
        prompt = to_messages(prompt_or_messages)[-1]["content"]
        self.calls.append(params)
        if "Break the answer" in prompt:
            answer = prompt.split("Answer:\n", 1)[1].split("\n\nReply", 1)[0]
            claims = [s.strip() for s in re.split(r"(?<=\.)\s+", answer) if s.strip()]
            return self.wrap(json.dumps({"claims": claims}))
        claims = re.findall(r"^\d+\. (.*)$", prompt.split("Claims:\n", 1)[1], flags=re.M)
        verdicts = [
            {"claim": i, "verdict": self.verdict(c), "reason": "scripted"}
            for i, c in enumerate(claims, 1)
        ]
        return self.wrap(json.dumps({"verdicts": verdicts}))


def by_number(claim: str) -> str:
    return "contradicted" if "412" in claim else "supported"


def test_scripted_generator_is_a_generator() -> None:
    assert isinstance(ScriptedGenerator(), Generator)


def test_share_of_supported_claims(tmp_path: Path) -> None:
    judge = LLMJudge(ScriptedGenerator(by_number), cache_dir=tmp_path)
    result = judge.judge(CONTEXT, "Lyon had 412 deaths. Hospital admissions increased.")
    assert result.score == 0.5
    assert [c.flags for c in result.claims] == [("verdict: contradicted",), ()]
    assert judge.judge(CONTEXT, "Hospital admissions increased.").score == 1.0


def test_a_rerun_costs_no_generator_call(tmp_path: Path) -> None:
    pairs = [(CONTEXT, "Lyon had 412 deaths."), (CONTEXT, "Admissions increased. Sure.")]
    first = ScriptedGenerator(by_number)
    scores = [r.score for r in LLMJudge(first, cache_dir=tmp_path).judge_batch(pairs)]
    assert len(first.calls) == 4  # extract + verify per pair
    second = ScriptedGenerator(by_number)
    again = LLMJudge(second, cache_dir=tmp_path)
    assert [r.score for r in again.judge_batch(pairs)] == scores
    assert second.calls == []
    assert again.cache_hits == 4
    files = list((tmp_path / "llm").rglob("*.json"))
    assert len(files) == 4
    assert all("reply" in json.loads(f.read_text()) for f in files)  # plain JSON, no pickle


def test_cache_key_includes_the_generator(tmp_path: Path) -> None:
    LLMJudge(ScriptedGenerator(), cache_dir=tmp_path).judge(CONTEXT, "Admissions increased.")
    other = ScriptedGenerator(takes_schema=True)  # a different repr: a different model
    LLMJudge(other, cache_dir=tmp_path).judge(CONTEXT, "Admissions increased.")
    assert len(other.calls) == 2


def test_schema_is_sent_when_the_backend_takes_it() -> None:
    takes = ScriptedGenerator(takes_schema=True)
    LLMJudge(takes).judge(CONTEXT, "Admissions increased.")
    assert all(call["json_schema"]["type"] == "object" for call in takes.calls)
    assert "verdicts" in json.dumps(takes.calls[-1]["json_schema"])

    refuses = ScriptedGenerator(takes_schema=False)
    judge = LLMJudge(refuses)
    assert judge.judge(CONTEXT, "Admissions increased.").score == 1.0
    assert judge.judge(CONTEXT, "Lyon had deaths.").score == 1.0
    assert all("json_schema" not in call for call in refuses.calls)
    assert judge.generator_calls == 5  # one refused try, then plain calls only


def test_replies_are_parsed_robustly() -> None:
    fenced = ScriptedGenerator(by_number, wrap=lambda t: f"Sure! Here it is:\n```json\n{t}\n```")
    result = LLMJudge(fenced).judge(CONTEXT, "Lyon had 412 deaths. Admissions increased.")
    assert result.score == 0.5
    assert parse_json('{"a": [1, 2,],}') == {"a": [1, 2]}
    assert parse_claims("1. Lyon had deaths in 2019\n2. Admissions rose a lot") == [
        "Lyon had deaths in 2019",
        "Admissions rose a lot",
    ]
    assert parse_verdicts(
        '{"verdicts": [{"claim": 2, "verdict": "Contradicted"}, '
        '{"claim": 1, "verdict": "SUPPORTED"}]}',
        2,
    ) == [
        "supported",
        "contradicted",
    ]
    assert parse_verdicts("1: supported\n2: not supported", 2) == ["supported", "unsupported"]
    with pytest.raises(UnreadableReply):
        parse_verdicts('{"verdicts": [{"claim": 1, "verdict": "supported"}]}', 2)


def test_abstains_on_failures_and_says_why() -> None:
    class Broken(ScriptedGenerator):
        def generate(self, prompt_or_messages: Any, **params: Any) -> str:
            raise GeneratorError("server down")

    result = LLMJudge(Broken()).judge(CONTEXT, "Admissions increased.")
    assert result.abstained is not None
    assert "server down" in result.abstained
    assert result.score == 0.5
    garbage = ScriptedGenerator(wrap=lambda t: "I cannot help with that.")
    assert "unreadable" in (LLMJudge(garbage).judge(CONTEXT, "Admissions up.").abstained or "")
    assert LLMJudge(ScriptedGenerator()).judge("", "Admissions up.").abstained == "empty context"


def test_deterministic_and_sentence_claims() -> None:
    judge = LLMJudge(ScriptedGenerator(by_number), claims="sentences")
    pairs = [(CONTEXT, "Lyon had 412 deaths. Admissions increased a lot.")] * 2
    assert [r.score for r in judge.judge_batch(pairs)] == [0.5, 0.5]
    with pytest.raises(InvalidInputError, match="claims must be"):
        LLMJudge(ScriptedGenerator(), claims="words")  # type: ignore[arg-type]


def test_prompts_are_package_files() -> None:
    assert "{answer}" in load_prompt("extract_claims.txt")
    assert "{context}" in load_prompt("verify_claims.txt")
    assert "{claims}" in load_prompt("verify_claims.txt")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama_cpp absent")
def test_smollm2_judge_runs_and_caches(tmp_path: Path) -> None:
    # claims="sentences": SmolLM2-135M's own claim lists run past max_tokens (an abstention);
    # it verifies one sentence, at temperature 0, as supported (it calls unrelated claims
    # supported too: too small a model to rank answers)
    judge = LLMJudge("smollm2", cache_dir=tmp_path, max_tokens=128, claims="sentences")
    first = judge.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.")
    assert first.abstained is None
    assert [c.claim for c in first.claims] == ["Lyon recorded 312 heatwave deaths in 2019."]
    assert first.claims[0].flags == ()
    assert first.score == 1.0
    again = LLMJudge("smollm2", cache_dir=tmp_path, max_tokens=128, claims="sentences")
    assert again.judge(CONTEXT, "Lyon recorded 312 heatwave deaths in 2019.") == first
    assert again.generator_calls == 0
