"""The LLM judge's prompt files ship in the wheel (they are package data, not modules)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


@pytest.mark.slow
def test_wheel_holds_the_judge_prompts(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv", "runs"
        ),
    )
    out = tmp_path / "wheels"
    result = subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("rag_retrievers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    prompts = sorted((ROOT / "evals" / "faithfulness" / "prompts").glob("*.txt"))
    assert prompts
    for prompt in prompts:
        assert f"rag_retrievers/evals/faithfulness/prompts/{prompt.name}" in names
    assert "rag_retrievers/evals/faithfulness/llm.py" in names
    assert "rag_retrievers/evals/faithfulness/weights/offline-default.json" in names
