"""A standing reliability suite (issue 17): opens while other processes save, manifest bit flips,
a full disk, searches under a writer that never pauses, and ``rag-retrievers bench trust``.

The checks are the functions of :mod:`rag_retrievers.evals.bench.trust`, so these tests and the
bench cannot drift apart. CI runs all of it with ``--run-slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_retrievers.evals.bench import trust

from rag_retrievers import BM25, CollectionError, Retriever
from rag_retrievers.cli import main as cli_main

# -- readers opening while other processes save ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("writers", [1, 2])
def test_opens_while_other_processes_save_never_fail(tmp_path: Path, writers: int) -> None:
    """Every open, while 1 or 2 processes save changed versions of ~2,000 documents in a loop,
    returns a complete saved version: its size, its documents, its search results."""
    report = trust.opens_under_saves(tmp_path, writers=writers, opens=300)
    assert report.opens == 300
    assert report.saves_meanwhile >= 20, "the saves hardly overlapped the opens"
    assert report.failed == 0, report.failures


def test_the_reference_check_tells_versions_apart(tmp_path: Path) -> None:
    """The check the open tests rely on: it accepts a saved version and refuses another one's
    content, a wrong version number and a damaged search."""
    versions = trust.Versions(docs=30)
    references = trust.References(versions)
    trust.save_first_version(tmp_path / "c", versions)
    retriever = Retriever.open(tmp_path / "c")
    assert references.check(retriever, lambda j: j == 0) == 0
    with pytest.raises(AssertionError, match="not a version allowed"):
        references.check(retriever, lambda j: j == 1)
    retriever.add(versions.step(1))
    assert references.check(retriever, lambda j: j == 1) == 1
    # version 2's size with version 1's rewrites: the documents step 2 writes are not there
    retriever.add([versions.document(versions.size(1), 1)])
    with pytest.raises(AssertionError, match="is not as saved"):
        references.check(retriever, lambda j: True)
    # right documents, other scores (a different BM25 parameter)
    other = BM25(k1=2.0)
    other.add(versions.documents(1))
    with pytest.raises(AssertionError, match="differs from a fresh index"):
        references.check(other, lambda j: True)
    assert references.check(other, lambda j: True, full=False) == 1


# -- single-bit flips of manifest.json ---------------------------------------------------------


def _assert_flips_harmless(report: trust.FlipReport) -> None:
    assert report.tried > 0
    assert report.refused + report.identical + report.different + report.other_errors == (
        report.tried
    )
    assert report.refused > 0  # most flips break the JSON or a name
    assert (report.different, report.other_errors) == (0, 0), report.examples


def test_a_sample_of_manifest_bit_flips_is_refused_or_harmless(tmp_path: Path) -> None:
    report = trust.manifest_bit_flips(tmp_path, limit=400, seed=1)
    assert report.tried == 400
    _assert_flips_harmless(report)


@pytest.mark.slow
def test_every_single_bit_flip_of_a_manifest_is_refused_or_harmless(tmp_path: Path) -> None:
    """Each flip raises CollectionError (corrupt, foreign) or opens to the very same search
    results; never another exception, never a collection that silently answers differently."""
    report = trust.manifest_bit_flips(tmp_path)
    assert report.tried == 8 * (tmp_path / "flipped" / "manifest.json").stat().st_size
    _assert_flips_harmless(report)


def test_bit_flips_leave_the_manifest_as_it_was(tmp_path: Path) -> None:
    report = trust.manifest_bit_flips(tmp_path, limit=50)
    assert report.tried == 50
    reopened = Retriever.open(tmp_path / "flipped")
    fresh = BM25()
    fresh.add(trust.Versions(trust.FLIP_DOCS).first())
    assert trust.signature(reopened) == trust.signature(fresh)


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, or a skip saying why none can be mounted here."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("a full disk needs mount/umount, which are not installed here")
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a 1 MiB tmpfs, and mounting one needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(
            f"cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?): "
            f"{done.stderr.strip() or done.returncode}"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=True)


def _leftovers(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.startswith((".gen-", ".manifest.json.")))


def test_a_save_that_fills_the_disk_fails_cleanly(small_disk: Path) -> None:
    """Saves of a growing collection into 1 MiB until one fails: the failure is a
    CollectionError with a one-line message naming the cause, the previous save opens with the
    very same results, no temporary files stay behind, and the space they took is free again."""
    path = small_disk / "col"
    versions = trust.Versions(docs=100)
    bm25 = BM25()
    bm25.add(versions.first())
    added, previous = versions.size(0), None
    for _ in range(40):
        try:
            bm25.save(path)
        except Exception as exc:  # the type is what this test checks
            error = exc
            break
        previous = (trust.signature(bm25), len(bm25))
        more = added // 2
        bm25.add([versions.document(i, 0) for i in range(added, added + more)])
        added += more
    else:
        pytest.fail("40 growing saves fitted into 1 MiB")
    assert previous is not None, f"even the first save failed: {error!r}"

    assert isinstance(error, CollectionError), repr(error)
    message = str(error)
    assert message, repr(error)
    assert "\n" not in message, message
    assert "no space left on device" in message.lower(), message
    assert str(path) in message, message

    reopened = Retriever.open(path)
    assert (trust.signature(reopened), len(reopened)) == previous
    assert _leftovers(path) == []

    # the failed save's files are gone: a small save fits again and opens
    reopened.delete([f"d{i}" for i in range(20, len(reopened))])
    reopened.save()
    assert len(Retriever.open(path)) == 20
    assert _leftovers(path) == []


# -- searches under a writer that never pauses -------------------------------------------------


def test_searches_progress_under_a_writer_that_never_pauses() -> None:
    """4 threads search a BM25 while one adds 100 documents at a time, back to back, 200 times:
    each completes at least one search per ten adds (a writer-preferring lock let them complete
    one or two in all)."""
    report = trust.searches_under_busy_writer(adds=200, batch=100, readers=4)
    assert len(report.searches) == 4
    assert report.floor == 20
    assert min(report.searches) >= report.floor, report.searches


# -- rag-retrievers bench trust ----------------------------------------------------------------


def _bench(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    code = cli_main(["bench", "trust", "--quiet", *options])
    return code, capsys.readouterr().out


def test_bench_trust_prints_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _bench(
        capsys,
        "--kills", "0", "--flips", "40", "--opens", "0", "--adds", "10", "--readers", "2",
        "--docs", "50", "--dir", str(tmp_path),
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[0].split() == ["check", "tried", "ok", "failed", "detail"]
    assert set(lines[1]) == {"-"}
    assert lines[2].startswith("SIGKILL during a save ")
    assert lines[3].split()[:4] == ["manifest.json", "bit", "flips", "40"]
    assert lines[4].startswith("searching threads, non-stop writer ")
    assert "during 10 adds of 100 documents (at least 1 needed)" in lines[4]
    assert any(line.startswith("verdict: ") for line in lines)
    assert lines[-1].startswith("wall time: ")
    assert code == (0 if "verdict: all checks hold" in out else 1)


@pytest.mark.slow
def test_bench_trust_json_with_tiny_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _bench(
        capsys,
        "--kills", "2", "--flips", "100", "--opens", "20", "--writers", "1,2", "--docs", "200",
        "--adds", "20", "--batch", "10", "--readers", "2", "--json",
    )  # fmt: skip
    report = json.loads(out)
    assert report["kills"]["kills"] == 2
    assert report["kills"]["exact"] == 2, report["kills"]["failures"]
    flips = report["flips"]
    assert flips["tried"] == 100
    assert flips["refused"] + flips["identical"] + flips["different"] + flips["other_errors"] == 100
    assert [(o["writers"], o["opens"]) for o in report["opens"]] == [(1, 20), (2, 20)]
    assert report["reads"]["adds"] == 20
    assert len(report["reads"]["searches"]) == 2
    assert min(report["reads"]["searches"]) >= report["reads"]["floor"] == 2
    assert report["ok"] == (
        not flips["different"]
        and not flips["other_errors"]
        and not any(o["failed"] for o in report["opens"])
    )
    assert code == (0 if report["ok"] else 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--writers", "0"], "--writers takes"),
        (["--writers", "x"], "--writers takes"),
        (["--kills", "-1"], "--kills must be >= 0"),
        (["--docs", "0"], "--docs must be >= 1"),
        (["--flips", "0"], "--flips must be >= 1"),
    ],
)
def test_bench_trust_refuses_bad_counts(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["bench", "trust", *options]) == 2
    assert message in capsys.readouterr().err
