"""The --json/--quiet options the benchmarks share, and the JSON report they print or write."""

import argparse
import json
from pathlib import Path

import pytest
from rag_retrievers.evals.output import (
    add_json_file_arguments,
    add_json_print_arguments,
    show_report,
    stderr_logger,
    write_json_report,
)


def test_json_file_options_and_write_into_a_new_folder(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_json_file_arguments(parser)
    assert vars(parser.parse_args([])) == {"json_path": None, "quiet": False}
    path = tmp_path / "new" / "report.json"
    args = parser.parse_args(["--json", str(path), "--quiet"])
    assert args.json_path == path
    assert args.quiet
    write_json_report(args.json_path, {"corpus": "café", "ms": 1.5})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "café" in text
    assert json.loads(text) == {"corpus": "café", "ms": 1.5}


def test_json_print_options_choose_json_or_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_json_print_arguments(parser, what="report")
    assert vars(parser.parse_args(["-q"])) == {"json": False, "quiet": True}
    assert "print the report as JSON" in parser.format_help()
    tables: list[dict[str, float]] = []
    show_report({"ndcg": 0.5}, as_json=False, table=tables.append)
    assert tables == [{"ndcg": 0.5}]
    assert capsys.readouterr().out == ""
    show_report({"ndcg": 0.5}, as_json=True, table=tables.append)
    assert json.loads(capsys.readouterr().out) == {"ndcg": 0.5}
    assert len(tables) == 1


def test_stderr_logger_is_silent_when_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    stderr_logger(quiet=True)("hidden")
    stderr_logger(quiet=False)("shown")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "[bench] shown\n"
