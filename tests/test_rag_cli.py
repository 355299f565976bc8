"""``rag-retrievers ask`` with a scripted generator registered for the test, and with an
OpenAI-compatible URL served by a scripted server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scripted_server import Reply, scripted_server

from rag_retrievers import BM25, Document
from rag_retrievers.cli import main
from rag_retrievers.generators import NOT_FOUND, GeneratorBase, registry


class Echo(GeneratorBase):
    """Cites passage 1 and says how many passages it saw."""

    def generate(self, prompt_or_messages: Any, **params: Any) -> str:
        user = prompt_or_messages[-1]["content"]
        return f"Apples go in pies [1]. ({user.count('<passage id=')} passages, params={params})"


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    bm25 = BM25()
    bm25.add(
        [
            Document(id="pie", text="Apple pie is baked with apples and cinnamon."),
            Document(id="tart", text="A pear tart uses almond cream."),
        ]
    )
    return bm25.save(tmp_path / "col")


@pytest.fixture
def echo() -> Iterator[None]:
    registry._GENERATORS.register("echo-for-test", Echo)
    yield
    registry._GENERATORS.unregister("echo-for-test")


@pytest.mark.usefixtures("echo")
def test_ask_prints_answer_and_numbered_citations(
    collection: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", str(collection), "apple pie", "--generator", "echo-for-test", "-k", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Apples go in pies [1]. (1 passages")
    assert "Citations:\n  [1] pie  Apple pie is baked" in out


@pytest.mark.usefixtures("echo")
def test_ask_json(collection: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["ask", str(collection), "apple pie", "--generator", "echo-for-test", "--json"]
    assert main([*args, "--max-tokens", "12"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["citations"] == ["pie"]
    assert report["citation_numbers"] == {"pie": 1}
    assert "params={'max_tokens': 12}" in report["text"]
    assert report["contexts"][0]["document"]["id"] == "pie"


@pytest.mark.usefixtures("echo")
def test_ask_not_found_and_errors(collection: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", str(collection), "quantum physics", "--generator", "echo-for-test"]) == 0
    assert capsys.readouterr().out.startswith(NOT_FOUND)
    assert main(["ask", str(collection), " ", "--generator", "echo-for-test"]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["ask", str(collection), "pie", "--generator", "nope"]) == 2
    assert "valid names: echo-for-test, extractive, langchain, llama-cpp" in capsys.readouterr().err
    bad_budget = ["--generator", "echo-for-test", "--max-context-tokens", "3"]
    assert main(["ask", str(collection), "pie", *bad_budget]) == 2
    assert "max_context_tokens" in capsys.readouterr().err


def test_ask_through_an_openai_compatible_url(
    collection: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with scripted_server([Reply(sse=["Cinnamon", " [1]."])]) as server:
        args = ["ask", str(collection), "apple pie", "--generator", server.url, "--stream"]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cinnamon [1].\n")
    assert "[1] pie" in out


def test_ask_unreachable_server_is_one_clear_line(
    collection: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "ask",
        str(collection),
        "apple pie",
        "--generator",
        "http://127.0.0.1:9",
        "--timeout",
        "2",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-retrievers: error: cannot reach http://127.0.0.1:9/v1")


def test_ask_threads_with_a_server_url_is_a_clear_error(
    collection: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["ask", str(collection), "pie", "--generator", "http://127.0.0.1:9", "--threads", "2"]
    assert main(args) == 2
    assert "--threads applies to a local GGUF model only" in capsys.readouterr().err
