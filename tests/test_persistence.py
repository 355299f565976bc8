"""Collection directories: exact save/open round trips, refusal of foreign and corrupt directories,
and atomic saves that survive SIGKILL at any point."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import rag_retrievers
from rag_retrievers import (
    BM25,
    CorruptCollectionError,
    Document,
    ForeignCollectionError,
    InvalidInputError,
    RagRetrieversError,
    Retriever,
)
from rag_retrievers.index.storage import write_manifest

# The document generator is shared, as source, with the child processes of the kill tests.
DOCS_SOURCE = '''
import random as _random

WORDS = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega retrieval ranking "
         "sparse dense index query fusion lexical neural").split()
STATE_A = 300  # documents d0 .. d299
BATCH = 20  # each step adds 20 new documents and deletes one of state A's


def make_doc(i):
    r = _random.Random(i)
    text = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 30)))
    return {"id": f"d{i}", "text": text, "metadata": {"n": i, "even": i % 2 == 0}}


def step_docs(j):
    """Documents added by step j (j >= 1)."""
    return [make_doc(i) for i in range(STATE_A + (j - 1) * BATCH, STATE_A + j * BATCH)]


def step_deleted(j):
    return f"d{j - 1}"


def state_docs(j):
    """Documents after j steps, in row order."""
    return [make_doc(i) for i in range(j, STATE_A)] + [
        make_doc(i) for i in range(STATE_A, STATE_A + j * BATCH)
    ]


def state_len(j):
    return STATE_A - j + j * BATCH
'''
_ns: dict[str, Any] = {}
exec(DOCS_SOURCE, _ns)
make_doc, state_docs, state_len = _ns["make_doc"], _ns["state_docs"], _ns["state_len"]
STATE_A = _ns["STATE_A"]

QUERIES = [
    "alpha beta",
    "sparse retrieval",
    "neural ranking fusion",
    "omega",
    "query index lexical",
]


def signature(retriever: Retriever, filter: dict[str, Any] | None = None) -> list[list[tuple]]:
    return [
        [(h.id, h.score, h.rank) for h in retriever.search(q, k=20, filter=filter)] for q in QUERIES
    ]


def corpus(n: int = 60) -> list[Document]:
    return [Document(**make_doc(i)) for i in range(n)]


def saved(tmp_path: Path, **options: Any) -> tuple[BM25, Path]:
    bm25 = BM25(**options)
    bm25.add(corpus())
    path = tmp_path / "col"
    bm25.save(path)
    return bm25, path


def listing(path: Path) -> list[str]:
    """The directory's entries, without the lock file every save uses."""
    return sorted(p.name for p in path.iterdir() if p.name != ".lock")


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"variant": "okapi", "k1": 1.2, "b": 0.7, "epsilon": 0.1},
        {"dtype": "float64", "analyzer": {"stopwords": ["alpha"], "stemmer": None}},
    ],
)
def test_round_trip_gives_identical_hits(tmp_path: Path, options: dict[str, Any]) -> None:
    bm25 = BM25(**options)
    bm25.add(corpus(40))
    bm25.add([Document(**make_doc(i)) for i in range(40, 70)])  # a second segment
    assert bm25.delete(["d3", "d17", "d45", "unknown"]) == 3
    # upserts: replaced texts and metadata
    bm25.add(
        [
            Document(id="d5", text="omega omega sparse", metadata={"n": -5}),
            Document(id="d60", text="alpha fusion", metadata={"n": 60, "extra": "yes"}),
            Document(id="new", text="neural ranking of query index", metadata={"tags": ["x", "y"]}),
        ]
    )
    path = bm25.save(tmp_path / "col")
    assert path == tmp_path / "col"
    assert bm25.path == path

    for reopened in (BM25.open(path), Retriever.open(path), rag_retrievers.open_collection(path)):
        assert type(reopened) is BM25
        assert reopened.config() == bm25.config()
        assert repr(reopened) == repr(bm25)
        assert len(reopened) == len(bm25) == 68
        assert reopened.path == path
        assert signature(reopened) == signature(bm25)
        assert signature(reopened, {"n": {"$gte": 30}}) == signature(bm25, {"n": {"$gte": 30}})
        assert (
            reopened.get("d5")
            == bm25.get("d5")
            == Document(id="d5", text="omega omega sparse", metadata={"n": -5})
        )
        assert reopened.get("d3") is None
        assert reopened.get("new").metadata == {"tags": ["x", "y"]}

    # the reopened collection keeps working like the original
    reopened = BM25.open(path)
    for retriever in (bm25, reopened):
        retriever.add(
            [Document(id="later", text="alpha alpha lexical"), Document(id="d7", text="zeta")]
        )
        retriever.delete(["d8", "new"])
    assert signature(reopened) == signature(bm25)

    # and a second save/open round trip of the reopened one changes nothing
    reopened.save()
    assert signature(BM25.open(path)) == signature(bm25)


def test_empty_collection_round_trip(tmp_path: Path) -> None:
    BM25().save(tmp_path / "empty")
    reopened = BM25.open(tmp_path / "empty")
    assert len(reopened) == 0
    assert reopened.search("anything") == []
    reopened.add(corpus(5))
    assert len(reopened) == 5


def test_save_needs_a_path_the_first_time() -> None:
    with pytest.raises(InvalidInputError, match="needs a path"):
        BM25().save()


def test_manifest_describes_the_collection(tmp_path: Path) -> None:
    bm25, path = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "rag-retrievers/collection"
    assert manifest["format_version"] == 2
    assert manifest["retriever"] == "bm25"
    assert manifest["config"] == bm25.config()
    assert manifest["data"] == "gen-000001"
    assert set(manifest["files"]) == set(os.listdir(path / "gen-000001"))
    assert "numpy" in manifest["versions"]
    # plain files, no pickle
    assert all(name.endswith((".npy", ".jsonl", ".json")) for name in manifest["files"])


def test_saves_keep_the_current_and_the_previous_generation(tmp_path: Path) -> None:
    # the previous one stays for readers that read the old manifest a moment before the swap
    bm25, path = saved(tmp_path)
    assert (path / ".lock").is_file()
    assert listing(path) == ["gen-000001", "manifest.json"]
    bm25.add([Document(id="more", text="alpha")])
    bm25.save()
    assert listing(path) == ["gen-000001", "gen-000002", "manifest.json"]
    bm25.save(path)
    assert listing(path) == ["gen-000002", "gen-000003", "manifest.json"]
    assert len(BM25.open(path)) == len(bm25)


def test_saving_over_another_collection_replaces_it(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    other = BM25(k1=1.1)
    other.add([Document(id="only", text="alpha")])
    other.save(path)
    reopened = BM25.open(path)
    assert len(reopened) == 1
    assert reopened.k1 == 1.1
    assert listing(path) == ["gen-000001", "gen-000002", "manifest.json"]


# -- foreign directories ------------------------------------------------------------------------


def test_saving_into_a_foreign_non_empty_directory_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "notes.txt").write_text("precious")
    (foreign / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = {p.relative_to(foreign): p.read_bytes() for p in foreign.rglob("*") if p.is_file()}

    bm25 = BM25()
    bm25.add(corpus(5))
    with pytest.raises(ForeignCollectionError, match="non-empty directory"):
        bm25.save(foreign)
    after = {p.relative_to(foreign): p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    assert after == before
    assert listing(foreign) == ["notes.txt", "sub"]
    assert bm25.path is None


def test_saving_onto_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ForeignCollectionError):
        BM25().save(target)
    assert target.read_text() == "x"


def test_saving_into_an_empty_existing_directory_works(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    BM25().save(tmp_path / "empty")
    assert listing(tmp_path / "empty") == ["gen-000001", "manifest.json"]


def test_opening_without_a_manifest_is_foreign(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "corpus.jsonl").write_text("{}\n")
    with pytest.raises(ForeignCollectionError, match=r"no manifest\.json"):
        BM25.open(tmp_path / "plain")
    with pytest.raises(ForeignCollectionError):
        rag_retrievers.open_collection(tmp_path / "does-not-exist")
    with pytest.raises(ForeignCollectionError):
        rag_retrievers.open_collection(tmp_path / "plain" / "corpus.jsonl")


def test_a_manifest_of_another_format_is_foreign(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format": "chroma"}))
    with pytest.raises(ForeignCollectionError):
        BM25.open(path)
    (path / "manifest.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ForeignCollectionError):
        BM25.open(path)
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ForeignCollectionError, match="format 99"):
        BM25.open(path)


class Other(Retriever):
    """A second retriever type (never registered): it must not open a bm25 collection."""

    name = "other"

    def __len__(self) -> int:
        return 0

    def config(self) -> dict[str, Any]:
        return {}

    def _add(self, documents: list[Document]) -> None:
        pass

    def _delete(self, ids: list[str]) -> int:
        return 0

    def _search_batch(self, queries, k, filter):
        return [[] for _ in queries]

    def _write_data(self, folder: Path) -> None:
        pass

    @classmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Other:
        return cls()


def test_opening_with_another_retriever_class_is_foreign(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    with pytest.raises(ForeignCollectionError, match="'bm25' collection, not 'other'"):
        Other.open(path)


def test_a_collection_of_an_unknown_retriever_is_refused(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    write_manifest(path, {**manifest, "retriever": "no-such-retriever"})
    with pytest.raises(RagRetrieversError, match="no-such-retriever"):
        rag_retrievers.open_collection(path)


# -- corrupt directories ------------------------------------------------------------------------


def _manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / "manifest.json").read_text())


def test_manifest_that_is_not_json_is_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    text = (path / "manifest.json").read_text()
    (path / "manifest.json").write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(CorruptCollectionError, match="not valid JSON"):
        BM25.open(path)
    (path / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CorruptCollectionError):
        rag_retrievers.open_collection(path)


@pytest.mark.parametrize("key", ["format_version", "retriever", "config", "data", "files"])
def test_manifest_missing_keys_is_corrupt(tmp_path: Path, key: str) -> None:
    _, path = saved(tmp_path)
    manifest = _manifest(path)
    del manifest[key]
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match=key):
        BM25.open(path)


@pytest.mark.parametrize(
    "name", ["documents.jsonl", "sparse_data.npy", "sparse_indptr.npy", "sparse_terms.json"]
)
def test_a_flipped_byte_in_a_data_file_is_corrupt(tmp_path: Path, name: str) -> None:
    _, path = saved(tmp_path)
    file = path / "gen-000001" / name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, different content
    file.write_bytes(bytes(data))
    with pytest.raises(CorruptCollectionError, match=f"{name} is damaged"):
        BM25.open(path)


def test_a_truncated_data_file_is_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    file = path / "gen-000001" / "sparse_indices.npy"
    file.write_bytes(file.read_bytes()[:-8])
    with pytest.raises(CorruptCollectionError, match="damaged"):
        rag_retrievers.open_collection(path)


@pytest.mark.parametrize("name", ["documents.jsonl", "sparse_data.npy", "sparse_terms.json"])
def test_a_missing_data_file_is_corrupt(tmp_path: Path, name: str) -> None:
    _, path = saved(tmp_path)
    (path / "gen-000001" / name).unlink()
    with pytest.raises(CorruptCollectionError, match=f"{name} is missing"):
        BM25.open(path)


def test_a_missing_generation_directory_is_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    shutil.rmtree(path / "gen-000001")
    with pytest.raises(CorruptCollectionError, match="missing"):
        BM25.open(path)


def _rewrite_with_digests(path: Path, name: str, content: bytes) -> None:
    """Replace a data file and fix the manifest's digest: damage the checksums cannot see."""
    import hashlib

    (path / "gen-000001" / name).write_bytes(content)
    manifest = _manifest(path)
    manifest["files"][name] = {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    write_manifest(path, manifest)


def test_invalid_records_behind_valid_digests_are_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    lines = (path / "gen-000001" / "documents.jsonl").read_bytes().splitlines(keepends=True)
    _rewrite_with_digests(path, "documents.jsonl", b"".join(lines[:3]) + b'{"id": ""}\n')
    with pytest.raises(CorruptCollectionError, match=r"documents\.jsonl:4"):
        BM25.open(path)


def test_index_that_does_not_fit_the_documents_is_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    lines = (path / "gen-000001" / "documents.jsonl").read_bytes().splitlines(keepends=True)
    _rewrite_with_digests(path, "documents.jsonl", b"".join(lines[:10]))  # 10 of 60 documents
    with pytest.raises(CorruptCollectionError):
        BM25.open(path)


def test_config_that_does_not_fit_is_corrupt(tmp_path: Path) -> None:
    _, path = saved(tmp_path)
    manifest = _manifest(path)
    manifest["config"]["bogus_option"] = 1
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError, match="config"):
        BM25.open(path)


# -- leftovers of interrupted saves -------------------------------------------------------------


def test_stale_temp_generation_is_removed_by_the_next_save(tmp_path: Path) -> None:
    bm25, path = saved(tmp_path)
    stale = path / ".gen-0123456789abcdef"
    stale.mkdir()
    (stale / "documents.jsonl").write_text("half written")
    assert len(BM25.open(path)) == len(bm25)  # leftovers do not disturb opening
    bm25.save()
    assert listing(path) == ["gen-000001", "gen-000002", "manifest.json"]


def test_orphan_generation_of_an_interrupted_save_is_replaced(tmp_path: Path) -> None:
    """A save killed after renaming its generation but before writing the manifest leaves
    gen-000002 that no manifest points to; the next save must not trust or keep it: it
    numbers its own generation past it and removes it."""
    bm25, path = saved(tmp_path)
    orphan = path / "gen-000002"
    orphan.mkdir()
    (orphan / "documents.jsonl").write_text("{}\n")
    (orphan / "junk.bin").write_bytes(b"junk")
    assert signature(BM25.open(path)) == signature(bm25)
    bm25.add([Document(id="x", text="alpha omega")])
    bm25.save()
    assert listing(path) == ["gen-000001", "gen-000003", "manifest.json"]
    assert not orphan.exists()
    assert signature(BM25.open(path)) == signature(bm25)


def test_a_first_save_that_was_interrupted_does_not_block_the_next(tmp_path: Path) -> None:
    path = tmp_path / "col"
    (path / ".gen-abc").mkdir(parents=True)
    (path / ".gen-abc" / "x").write_text("partial")
    with pytest.raises(ForeignCollectionError):
        BM25.open(path)  # nothing was ever saved here
    bm25 = BM25()
    bm25.add(corpus(3))
    bm25.save(path)
    assert listing(path) == ["gen-000001", "manifest.json"]


# -- SIGKILL during saves -----------------------------------------------------------------------

CHILD = (
    DOCS_SOURCE
    + """
import os, signal, sys, time
from rag_retrievers import open_collection

path, mode = sys.argv[1], sys.argv[2]

if mode not in ("loop", "calibrate"):
    # kill this process at one precise point of the save
    import rag_retrievers.index.storage as storage
    from rag_retrievers.index.sparse import SparseIndex

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if mode == "before-rename" and len(calls) == 1:
            die()
        if mode == "before-manifest" and len(calls) == 2:
            die()
        real_replace(src, dst)
        if mode == "after-rename" and len(calls) == 1:
            die()
        if mode == "after-manifest" and len(calls) == 2:
            die()

    storage.os.replace = replace
    if mode == "mid-write":
        real_snapshot = SparseIndex.snapshot

        def snapshot(self):
            real_write = real_snapshot(self)

            def write(folder, prefix="sparse"):
                real_write(folder, prefix)
                die()  # documents.jsonl and the sparse files are written, not fsynced or renamed

            return write

        SparseIndex.snapshot = snapshot

retriever = open_collection(path)
j = (len(retriever) - STATE_A) // (BATCH - 1)
assert len(retriever) == state_len(j), len(retriever)
last = j + (2 if mode == "calibrate" else 1 if mode != "loop" else 50)
while j < last:
    j += 1
    retriever.add(step_docs(j))
    retriever.delete([step_deleted(j)])
    print(f"saving {j}", flush=True)
    began = time.perf_counter()
    retriever.save()
    print(f"saved {j} {time.perf_counter() - began:.6f}", flush=True)
"""
)


def _state_a(tmp_path: Path) -> Path:
    bm25 = BM25()
    bm25.add([Document(**d) for d in state_docs(0)])
    path = tmp_path / "col"
    bm25.save(path)
    return path


def _child(path: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


_references: dict[int, list[list[tuple]]] = {}


def _reference(j: int) -> list[list[tuple]]:
    """Search results of a fresh in-memory BM25 holding state j's documents."""
    if j not in _references:
        bm25 = BM25()
        bm25.add([Document(**d) for d in state_docs(j)])
        _references[j] = signature(bm25) + signature(bm25, {"even": True})
    return _references[j]


def _assert_state(path: Path, allowed: set[int]) -> int:
    """The collection opens, verifies and holds exactly one of the ``allowed`` states."""
    reopened = rag_retrievers.open_collection(path)
    states = {state_len(j): j for j in allowed}
    assert len(reopened) in states, (len(reopened), sorted(states))
    j = states[len(reopened)]
    assert signature(reopened) + signature(reopened, {"even": True}) == _reference(j)
    if j:
        assert reopened.get(f"d{j - 1}") is None
    return j


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "advances", "leftover"),
    [
        ("mid-write", False, ".gen-"),
        ("before-rename", False, ".gen-"),
        ("after-rename", False, "gen-000002"),
        ("before-manifest", False, ".manifest.json."),
        ("after-manifest", True, "gen-000001"),
    ],
)
def test_kill_at_each_phase_of_a_save(
    tmp_path: Path, mode: str, advances: bool, leftover: str
) -> None:
    path = _state_a(tmp_path)
    proc = _child(path, mode)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (out, err)
    assert out.splitlines() == ["saving 1"]
    # the interrupted save left something behind...
    names = listing(path)
    assert any(n.startswith(leftover) for n in names), names
    # ...but the collection opens, in the state before or after that save, never in between
    assert _assert_state(path, {0, 1}) == (1 if advances else 0)

    # the next save succeeds and leaves no trace of the interrupted one
    again = _child(path, "calibrate")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    done = 3 if advances else 2
    assert _assert_state(path, {done}) == done
    names = listing(path)
    current = json.loads((path / "manifest.json").read_text())["data"]
    assert [n for n in names if not n.startswith("gen-")] == ["manifest.json"]
    assert current in names
    assert len([n for n in names if n.startswith("gen-")]) == 2  # the current and the previous


@pytest.mark.slow
def test_kill_at_random_points_while_saving_repeatedly(tmp_path: Path) -> None:
    path = _state_a(tmp_path)
    rng = random.Random(20240611)

    # how long one save takes here: kill delays are drawn around it
    proc = _child(path, "calibrate")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    durations = [float(line.split()[2]) for line in out.splitlines() if line.startswith("saved")]
    save_seconds = max(durations)
    state = _assert_state(path, {2})

    outcomes = []
    for _ in range(15):
        proc = _child(path, "loop")
        saves_to_wait = rng.randint(1, 3)
        delay = rng.choice([0.0, rng.uniform(0, 1.5 * save_seconds)])
        started, completed = state, state
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            assert line, (
                f"child exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
            )
            word, number = line.split()[:2]
            if word == "saved":
                completed = int(number)
            elif word == "saving" and int(number) == started + saves_to_wait:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        # the child may have gone on during the delay: what did it print before it died?
        in_flight = started + saves_to_wait
        for line in rest.splitlines():
            word, number = line.split()[:2]
            if word == "saved":
                completed = int(number)
            else:
                in_flight = int(number)
        # completed saves are kept; the interrupted one is all or nothing
        state = _assert_state(path, {completed, in_flight})
        names = listing(path)
        if completed > started and outcomes:
            # a save finished in this run, so it removed the temp folders earlier kills left
            stale_before = {n for n in outcomes[-1][2] if n.startswith(".gen-")}
            assert not stale_before & set(names), (outcomes[-1][2], names)
        outcomes.append((delay, state == in_flight, names))

    # the next save cleans up whatever the last kill left
    reopened = rag_retrievers.open_collection(path)
    reopened.save()
    names = listing(path)
    assert not [n for n in names if n.startswith(".gen-")], names
    generations = [n for n in names if n.startswith("gen-")]
    assert json.loads((path / "manifest.json").read_text())["data"] in generations
    assert len(generations) == 2  # the current and the previous
    assert _assert_state(path, {state}) == state
    assert state > 2
    # the random delays did land inside saves: some kill left a partial save behind
    interrupted = [
        names
        for _, _, names in outcomes
        if any(n.startswith(".") for n in names) or sum(n.startswith("gen-") for n in names) > 1
    ]
    assert interrupted, outcomes


def test_a_first_save_killed_after_its_rename_does_not_block_the_next(tmp_path: Path) -> None:
    path = tmp_path / "col"
    (path / "gen-000001").mkdir(parents=True)
    (path / "gen-000001" / "documents.jsonl").write_text("{}\n")
    (path / ".manifest.json.0123.tmp").write_text("{")
    bm25 = BM25()
    bm25.add(corpus(3))
    bm25.save(path)
    assert listing(path) == ["gen-000002", "manifest.json"]
    assert len(BM25.open(path)) == 3


def test_saves_from_several_threads_serialise(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "col"
    retrievers = []
    for n in range(1, 7):
        bm25 = BM25()
        bm25.add(corpus(n))
        retrievers.append(bm25)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda r: r.save(path), retrievers))
    assert len(BM25.open(path)) in range(1, 7)
    assert len([n for n in listing(path) if n.startswith("gen-")]) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"files": ["documents.jsonl"]},
        {"files": {"documents.jsonl": "abc"}},
        {"data": "../elsewhere"},
        {"config": "k1=1"},
        {"files": {"../../etc/passwd": {"bytes": 1, "sha256": "x"}}},
    ],
)
def test_a_manifest_of_the_wrong_shape_is_corrupt(tmp_path: Path, change: dict) -> None:
    _, path = saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(change)
    write_manifest(path, manifest)
    with pytest.raises(CorruptCollectionError):
        BM25.open(path)


def test_terms_with_line_separators_round_trip(tmp_path: Path) -> None:
    bm25 = BM25(analyzer={"token_pattern": r"[^ ]+", "stemmer": None, "stopwords": "none"})
    bm25.add([Document(id="a", text="x\u2028y z\x1cw"), Document(id="b", text="plain words")])
    bm25.save(tmp_path / "c")
    reopened = BM25.open(tmp_path / "c")
    assert reopened.search("x\u2028y", k=1)[0].id == "a"


def test_open_options_an_adapter_does_not_take_are_named(tmp_path: Path) -> None:
    bm25 = BM25()
    bm25.add([Document(id="a", text="alpha")])
    bm25.save(tmp_path / "c")
    with pytest.raises(
        InvalidInputError,
        match=r"BM25\.open takes no option model; it takes: engine$",
    ):
        Retriever.open(tmp_path / "c", model="minilm")
    assert len(Retriever.open(tmp_path / "c", model=None)) == 1  # None means "not given"
