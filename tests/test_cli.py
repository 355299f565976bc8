import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag_retrievers import Retriever
from rag_retrievers.cli import main

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "a", "text": "apple pie with cinnamon", "metadata": {"lang": "en"}},
            {
                "_id": "b",
                "title": "Tarts",
                "text": "pear tart and almond cream",
                "metadata": {"lang": "fr"},
            },
            {"_id": "c", "text": "cinnamon rolls need yeast", "metadata": {"lang": "en"}},
        ],
    )


def test_index_then_search(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["index", str(tmp_path / "col"), "--input", str(corpus), "-q"]) == 0
    assert "3 documents (+3)" in capsys.readouterr().out
    assert (
        main(
            [
                "search",
                str(tmp_path / "col"),
                "cinnamon",
                "--json",
                "-k",
                "5",
                "--filter",
                '{"lang": "en"}',
            ]
        )
        == 0
    )
    hits = json.loads(capsys.readouterr().out)
    assert {h["id"] for h in hits} == {"a", "c"}
    assert [h["rank"] for h in hits] == [1, 2]


def test_index_adds_to_an_existing_collection(tmp_path: Path, corpus: Path, capsys) -> None:
    main(["index", str(tmp_path / "col"), "--input", str(corpus), "-q"])
    more = write_jsonl(
        tmp_path / "more.jsonl",
        [{"_id": "d", "text": "plum crumble"}, {"_id": "a", "text": "apple strudel"}],
    )
    assert main(["index", str(tmp_path / "col"), "--input", str(more), "-q"]) == 0
    assert "4 documents (+1)" in capsys.readouterr().out
    col = Retriever.open(tmp_path / "col")
    assert col.search("strudel", k=1)[0].id == "a"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (['{"_id": "x", "text": "ok"}', "{broken"], "bad.jsonl:2: not valid JSON"),
        ([{"_id": "x"}], "bad.jsonl:1: needs a string 'text'"),
        ([{"_id": "x", "text": "a"}, {"_id": "x", "text": "b"}], "duplicate id 'x'"),
    ],
)
def test_bad_input_exits_2_and_keeps_the_collection(
    tmp_path: Path, corpus: Path, capsys, rows: list, message: str
) -> None:
    main(["index", str(tmp_path / "col"), "--input", str(corpus), "-q"])
    manifest = (tmp_path / "col" / "manifest.json").read_bytes()
    capsys.readouterr()
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert main(["index", str(tmp_path / "col"), "--input", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rag-retrievers: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert (tmp_path / "col" / "manifest.json").read_bytes() == manifest
    assert len(Retriever.open(tmp_path / "col")) == 3


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, corpus: Path, capsys) -> None:
    cases = [
        (
            ["index", str(tmp_path / "x"), "--input", str(tmp_path / "missing.jsonl")],
            "no such file",
        ),
        (
            ["index", str(tmp_path / "x"), "--input", str(corpus), "--retriever", "nope"],
            "unknown retriever 'nope'; valid names: bm25",
        ),
        (["index", str(tmp_path / "x"), "--input", str(corpus), "--param", "k1=-3"], "k1"),
        (["search", str(tmp_path / "missing"), "apple"], "no collection"),
        (
            [
                "eval",
                "retrieval",
                "--dataset",
                str(tmp_path),
                "--retriever",
                "bm25",
                "--metrics",
                "F1",
            ],
            "unknown metric 'F1'",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_eval_retrieval_prints_metrics_and_writes_files(
    tmp_path: Path, corpus: Path, capsys
) -> None:
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    corpus.rename(data / "corpus.jsonl")
    write_jsonl(
        data / "queries.jsonl",
        [{"_id": "q1", "text": "cinnamon apple"}, {"_id": "q2", "text": "almond tart"}],
    )
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\nq2\tb\t1\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "retrieval",
                "--dataset",
                str(data),
                "--retriever",
                "bm25",
                "-q",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert "nDCG@10 1.0000" in lines
    assert "MRR@10 1.0000" in lines
    assert json.loads((out / "metrics.json").read_text())["metrics"]["Recall@100"] == 1.0
    assert (out / "run.trec").read_text().splitlines()[0].startswith("q1 Q0 a 1 ")


def test_demo_runs(capsys) -> None:
    assert main(["demo"]) == 0
    assert "identical results: True" in capsys.readouterr().out


def test_console_script_and_sdk_example_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rag_retrievers.cli", "search", str(tmp_path), "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "not a rag-retrievers collection" in done.stderr
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "sdk_quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "3 documents after reopening" in done.stdout


def test_non_utf8_input_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    assert main(["index", str(tmp_path / "col"), "--input", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "latin1.jsonl:2: not UTF-8" in err
    assert err.count("\n") == 1


def test_a_foreign_target_fails_before_indexing(tmp_path: Path, corpus: Path, capsys) -> None:
    target = tmp_path / "notes"
    target.mkdir()
    (target / "todo.txt").write_text("keep me")
    assert main(["index", str(target), "--input", str(corpus), "-q"]) == 2
    assert "refusing to write a collection" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["todo.txt"]


def test_index_keeps_the_collections_own_retriever(tmp_path: Path, corpus: Path, capsys) -> None:
    main(["index", str(tmp_path / "col"), "--input", str(corpus), "--param", "k1=1.2", "-q"])
    assert main(["index", str(tmp_path / "col"), "--input", str(corpus), "-q"]) == 0
    assert Retriever.open(tmp_path / "col").config()["k1"] == 1.2


def _tiny_dataset(tmp_path: Path, corpus: Path) -> Path:
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_bytes(corpus.read_bytes())
    write_jsonl(data / "queries.jsonl", [{"_id": "q1", "text": "cinnamon apple"}])
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\n")
    return data


def test_eval_reuses_a_cached_index(tmp_path: Path, corpus: Path, capsys) -> None:
    data = _tiny_dataset(tmp_path, corpus)
    argv = [
        "eval",
        "retrieval",
        "--dataset",
        str(data),
        "--retriever",
        "bm25",
        "-q",
        "--cache",
        str(tmp_path / "cache"),
        "--output",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "from the cache" not in first
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "index opened from the cache" in second
    assert [line for line in first.splitlines() if line.startswith("nDCG@10")] == [
        line for line in second.splitlines() if line.startswith("nDCG@10")
    ]
    # a changed corpus is a different cache entry
    with (data / "corpus.jsonl").open("a") as f:
        f.write(json.dumps({"_id": "z", "text": "zucchini bread"}) + "\n")
    assert main(argv) == 0
    assert "from the cache" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_prf_and_hybrid_evals_reuse_their_leaves_cached_index(
    tmp_path: Path, corpus: Path, capsys
) -> None:
    data = _tiny_dataset(tmp_path, corpus)
    cache = ["--cache", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    argv = ["eval", "retrieval", "--dataset", str(data), "-q", *cache]
    assert main([*argv, "--retriever", "bm25"]) == 0
    capsys.readouterr()
    for extra in (
        ["--retriever", "bm25", "--prf", "rm3"],
        ["--retriever", "hybrid", "--members", "bm25,bm25", "--fusion", "rrf"],
        [
            "--retriever",
            "hybrid",
            "--members",
            "bm25,bm25",
            "--fusion",
            "combsum",
            "--param",
            "normalization=z-score",
        ],
    ):
        assert main([*argv, *extra]) == 0
        assert "index opened from the cache" in capsys.readouterr().out, extra
    assert len(list((tmp_path / "cache").iterdir())) == 1  # the one BM25 index
    # a leaf's own options still make a leaf of their own
    assert main([*argv, "--retriever", "bm25", "--prf", "rm3", "--param", "k1=1.5"]) == 0
    assert "from the cache" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_follows_the_corpus_content_not_its_path_or_mtime(
    tmp_path: Path, corpus: Path, capsys
) -> None:
    data = _tiny_dataset(tmp_path, corpus)
    cache = ["--cache", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    argv = ["eval", "retrieval", "--retriever", "bm25", "-q", *cache]
    assert main([*argv, "--dataset", str(data)]) == 0
    capsys.readouterr()
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(data, moved)  # a copy, as on another machine: new path, new mtime
    os.utime(moved / "corpus.jsonl", (1, 1))
    assert main([*argv, "--dataset", str(moved)]) == 0
    assert "index opened from the cache" in capsys.readouterr().out


def test_cache_follows_the_resolved_configuration_defaults_included(
    tmp_path: Path, corpus: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spelling a default out reuses the index; a changed default does not."""
    from rag_retrievers.adapters.bm25 import BM25

    data = _tiny_dataset(tmp_path, corpus)
    cache = ["--cache", str(tmp_path / "cache"), "--output", str(tmp_path / "out")]
    argv = ["eval", "retrieval", "--dataset", str(data), "--retriever", "bm25", "-q", *cache]
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--param", "k1=0.9"]) == 0  # the default, written out
    assert "index opened from the cache" in capsys.readouterr().out
    config = BM25.config
    monkeypatch.setattr(BM25, "config", lambda self: {**config(self), "b": 0.75})
    assert main(argv) == 0  # as if a release changed a default
    assert "from the cache" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--members", "bm25,bm25"], "--members applies to --retriever hybrid only"),
        (["--fusion", "rrf"], "--fusion applies to --retriever hybrid only"),
        (["--model", "minilm"], "bm25 takes no model"),
    ],
)
def test_retriever_options_that_do_not_fit(tmp_path: Path, corpus: Path, capsys, extra, message):
    data = _tiny_dataset(tmp_path, corpus)
    argv = ["eval", "retrieval", "--dataset", str(data), "--retriever", "bm25", "-q", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_eval_example_script_runs(tmp_path: Path, corpus: Path) -> None:
    data = _tiny_dataset(tmp_path, corpus)
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "eval_beir.py"), str(data)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "nDCG@10 1.0000" in done.stdout  # the one judged document is ranked first
    assert (tmp_path / "runs" / "example-bm25.trec").is_file()
