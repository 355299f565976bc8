"""``rag-retrievers bench trust``: reliability figures of saved collections, rerunnable by anyone.

Four checks on BM25 collections, each counted, none timed (2 slow cores and 16 fast ones give the
same verdicts):

- **SIGKILL during saves**: a child process opens the collection and saves changed versions of
  it in a loop; it is killed with SIGKILL at a random point (a random delay after it announced a
  save), ``--kills`` times. After every kill the collection must reopen as exactly one
  completed save: the last one the child finished, or the one it was killed in.
- **manifest.json bit flips**: every single-bit flip of a small collection's manifest (or a
  seeded sample of ``--flips`` of them) must either be refused with
  :class:`~rag_retrievers.errors.CollectionError` or open to a collection whose search results
  are identical to the original's. "Silently different" (opens, answers differently) and any
  other exception count as failures.
- **opens under concurrent saves**: 1 and 2 child processes save changed versions of a
  collection in a loop while this process opens it ``--opens`` times; every open must succeed
  and hold one of the saved versions, with that version's search results.
- **searches under a non-stop writer**: one thread adds ``--batch`` documents at a time, back to
  back with no pause, ``--adds`` times, while ``--readers`` threads search; every reader must
  complete at least one search per ten adds.

``tests/test_reliability.py`` runs these same functions with the counts its assertions need, so
the bench and the tests cannot drift.

Versions of a collection (:class:`Versions`): version ``j`` holds ``docs + j`` documents; going
from ``j - 1`` to ``j`` adds one document and rewrites every tenth, so each save changes the
content, and the number of documents names the version.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_retrievers.evals.output import report_json

from rag_retrievers.errors import CollectionError, InvalidInputError

if TYPE_CHECKING:
    from rag_retrievers.base import Retriever
    from rag_retrievers.records import Document

WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega retrieval ranking "
    "sparse dense index query fusion lexical neural"
).split()
QUERIES = (
    "alpha beta",
    "sparse retrieval",
    "neural ranking fusion",
    "omega",
    "query index lexical",
)
K = 10
#: each reader must complete at least one search per this many adds of a non-stop writer
ADDS_PER_SEARCH = 10

DEFAULT_DOCS = 2_000
DEFAULT_KILLS = 30
DEFAULT_OPENS = 300
DEFAULT_WRITERS = (1, 2)
DEFAULT_ADDS = 200
DEFAULT_BATCH = 100
DEFAULT_READERS = 4
FLIP_DOCS = 20
#: opens under concurrent saves check every score against a fresh index once in this many opens
FULL_CHECK_EVERY = 10


# -- versions of a collection ------------------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    """Version ``j`` of a collection that starts with ``docs`` documents (see the module doc)."""

    docs: int = DEFAULT_DOCS

    def size(self, j: int) -> int:
        return self.docs + j

    def version_of(self, n_docs: int) -> int:
        """The version a collection of ``n_docs`` documents is (negative: none)."""
        return n_docs - self.docs

    def document(self, i: int, j: int) -> Document:
        """Document ``i`` as version ``j`` holds it: rewritten when ``j % 10 == i % 10``."""
        from rag_retrievers.records import Document

        rewrites = (j + 10 - i % 10) // 10
        rng = random.Random(i * 1_000_003 + rewrites * 7_919)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        return Document(id=f"d{i}", text=text, metadata={"n": i, "rewrites": rewrites})

    def documents(self, j: int) -> list[Document]:
        return [self.document(i, j) for i in range(self.size(j))]

    def first(self) -> list[Document]:
        return self.documents(0)

    def step(self, j: int) -> list[Document]:
        """What turns version ``j - 1`` into version ``j`` (``j >= 1``), as one add."""
        before = self.size(j - 1)
        rewritten = [self.document(i, j) for i in range(j % 10, before, 10)]
        return [*rewritten, self.document(before, j)]


Signature = tuple[tuple[tuple[str, float, int], ...], ...]


def signature(retriever: Retriever) -> Signature:
    """The top-``K`` hits (id, score, rank) of every query in :data:`QUERIES`."""
    return tuple(
        tuple((h.id, h.score, h.rank) for h in hits)
        for hits in retriever.search_batch(list(QUERIES), k=K)
    )


@dataclass
class References:
    """What each version must hold and answer. Search results come from a fresh in-memory BM25
    of the version's documents (saves, reopens and upserts give the very same scores); they are
    compared by score, as a document tied with another may take either rank."""

    versions: Versions
    _scores: dict[int, list[dict[str, float]]] = field(default_factory=dict)

    def scores(self, j: int) -> list[dict[str, float]]:
        """Per query, every matching document's score in version ``j``."""
        if j not in self._scores:
            from rag_retrievers import BM25

            bm25 = BM25()
            bm25.add(self.versions.documents(j))
            if len(self._scores) >= 16:
                self._scores.clear()
            self._scores[j] = [
                {h.id: h.score for h in hits}
                for hits in bm25.search_batch(list(QUERIES), k=len(bm25))
            ]
        return self._scores[j]

    def check(self, retriever: Any, allowed: Callable[[int], bool], *, full: bool = True) -> int:
        """The version ``retriever`` (a BM25) holds; raises ``AssertionError`` unless it is
        ``allowed``, holds that version's documents and searches like it. ``full=False`` checks
        a sample of the documents and that each search returns hits (at most ``K``) of the
        version, best first; ``full=True`` also checks every score against a fresh index."""
        versions = self.versions
        j = versions.version_of(len(retriever))
        if j < 0 or not allowed(j):
            raise AssertionError(f"{len(retriever)} documents: not a version allowed here")
        newest = versions.size(j) - 1
        for i in [newest, *range(j % 10, newest, 10)][:4]:  # those the last step wrote
            if retriever.get(f"d{i}") != versions.document(i, j):
                raise AssertionError(f"version {j}: document d{i} is not as saved")
        for query, hits in zip(QUERIES, signature(retriever), strict=True):
            scores = [score for _, score, _ in hits]
            ids_ok = all(0 <= int(doc_id[1:]) <= newest for doc_id, _, _ in hits)
            if not 0 < len(hits) <= K or scores != sorted(scores, reverse=True) or not ids_ok:
                raise AssertionError(f"version {j}: search {query!r} gave {hits}")
        if full:
            for query, hits, expected in zip(
                QUERIES, signature(retriever), self.scores(j), strict=True
            ):
                best = sorted(expected.values(), reverse=True)[:K]
                if [score for _, score, _ in hits] != best or any(
                    expected.get(doc_id) != score for doc_id, score, _ in hits
                ):
                    raise AssertionError(
                        f"version {j}: search {query!r} differs from a fresh index"
                    )
        return j


def save_first_version(path: Path, versions: Versions) -> None:
    from rag_retrievers import BM25

    bm25 = BM25()
    bm25.add(versions.first())
    bm25.save(path)


# -- the saving child process ------------------------------------------------------------------


def saver_main(path: str, docs: int, max_saves: int) -> int:
    """In a child process: open the collection, then save the next version, ``max_saves`` times,
    printing ``saving J`` before and ``saved J`` after each save."""
    from rag_retrievers import Retriever

    versions = Versions(docs)
    retriever = Retriever.open(path)
    j = versions.version_of(len(retriever))
    for _ in range(max_saves):
        j += 1
        retriever.add(versions.step(j))
        print(f"saving {j}", flush=True)
        retriever.save()
        print(f"saved {j}", flush=True)
    return 0


def start_saver(path: Path, versions: Versions, max_saves: int = 100_000) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rag_retrievers.evals.bench.trust",
            "--saver",
            str(path),
            str(versions.docs),
            str(max_saves),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stderr(proc: subprocess.Popen[str]) -> str:
    return proc.stderr.read() if proc.stderr is not None else ""


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=60)


# -- SIGKILL during saves ----------------------------------------------------------------------


@dataclass
class KillReport:
    kills: int = 0
    exact: int = 0  # reopened as exactly one completed save
    mid_save: int = 0  # killed after "saving J" and before "saved J"
    mid_save_kept: int = 0  # of those, reopened as save J (the kill came after its manifest)
    failures: list[str] = field(default_factory=list)


def _save_seconds(path: Path) -> float:
    from rag_retrievers import Retriever

    retriever = Retriever.open(path)
    began = time.perf_counter()
    retriever.save(path.with_name(path.name + "-timing"))
    return time.perf_counter() - began


def kills_during_saves(
    workdir: Path,
    *,
    kills: int,
    docs: int = DEFAULT_DOCS,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> KillReport:
    """Kill a saving child ``kills`` times at random points; reopen after each kill."""
    from rag_retrievers import Retriever

    versions, rng, report = Versions(docs), random.Random(seed), KillReport()
    references = References(versions)
    path = workdir / "killed"
    save_first_version(path, versions)
    save_s = _save_seconds(path)
    state = 0
    for n in range(kills):
        proc = start_saver(path, versions)
        assert proc.stdout is not None
        saves_to_wait = rng.randint(1, 3)
        delay = rng.choice([0.0, rng.uniform(0, 1.5 * save_s)])
        completed, in_flight = state, state + saves_to_wait
        try:
            while True:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"saver exited early: {proc.wait()} {_stderr(proc)}")
                word, number = line.split()[:2]
                if word == "saved":
                    completed = int(number)
                elif int(number) == in_flight:
                    break
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=60)
        finally:
            _stop(proc)
        for line in rest.splitlines():
            word, number = line.split()[:2]
            if word == "saved":
                completed = int(number)
            else:
                in_flight = int(number)
        report.kills += 1
        report.mid_save += in_flight > completed
        try:
            state = references.check(Retriever.open(path), {completed, in_flight}.__contains__)
            report.exact += 1
            report.mid_save_kept += in_flight > completed and state == in_flight
        except (AssertionError, CollectionError, OSError) as exc:
            report.failures.append(f"kill {n + 1}: {type(exc).__name__}: {exc}")
            break  # the versions that follow are unknown
        if log is not None:
            log(f"kill {n + 1}/{kills}: version {state}")
    return report


# -- manifest bit flips ------------------------------------------------------------------------


@dataclass
class FlipReport:
    tried: int = 0
    refused: int = 0
    identical: int = 0
    different: int = 0
    other_errors: int = 0
    examples: list[str] = field(default_factory=list)  # one of each kind of failure


def _flip_context(data: bytes, byte: int, bit: int) -> str:
    before = data[max(0, byte - 20) : byte + 20].decode("utf-8", "replace")
    return f"byte {byte} bit {bit} in {before!r}"


def manifest_bit_flips(workdir: Path, *, limit: int | None = None, seed: int = 0) -> FlipReport:
    """Flip each bit of a small collection's manifest.json in turn (or ``limit`` of them, a
    seeded sample) and open the collection each time."""
    from rag_retrievers import BM25, Retriever

    path = workdir / "flipped"
    bm25 = BM25()
    bm25.add(Versions(FLIP_DOCS).first())
    bm25.save(path)
    original = signature(Retriever.open(path))
    manifest = path / "manifest.json"
    data = manifest.read_bytes()
    positions = range(len(data) * 8)
    if limit is not None and limit < len(positions):
        positions = sorted(random.Random(seed).sample(positions, limit))  # type: ignore[assignment]
    report, shown = FlipReport(), set()
    fd = os.open(manifest, os.O_WRONLY)  # flips in place: the size never changes
    try:
        for position in positions:
            byte, bit = divmod(position, 8)
            os.pwrite(fd, bytes([data[byte] ^ (1 << bit)]), byte)
            report.tried += 1
            try:
                outcome = (
                    "identical" if signature(Retriever.open(path)) == original else "different"
                )
            except CollectionError:
                outcome = "refused"
            except Exception as exc:  # counted: a caller would not expect it
                outcome = f"other_errors: {type(exc).__name__}: {str(exc)[:160]}"
            finally:
                os.pwrite(fd, data[byte : byte + 1], byte)
            kind = outcome.split(":")[0]
            setattr(report, kind, getattr(report, kind) + 1)
            what = outcome.partition(": ")[2] or "opened, different search results"
            if kind in ("different", "other_errors") and what.split(":")[0] not in shown:
                shown.add(what.split(":")[0])  # one example of each outcome
                report.examples.append(f"{what} ({_flip_context(data, byte, bit)})")
    finally:
        os.close(fd)
        manifest.write_bytes(data)
    return report


# -- opens under concurrent saves --------------------------------------------------------------


@dataclass
class OpenReport:
    writers: int
    opens: int = 0
    failed: int = 0
    saves_meanwhile: int = 0
    failures: list[str] = field(default_factory=list)  # the first few


@contextmanager
def _savers(path: Path, versions: Versions, n: int) -> Iterator[list[int]]:
    """``n`` children saving ``path`` in a loop; yields the count of saves each has finished."""
    procs = [start_saver(path, versions) for _ in range(n)]
    saved = [0] * n
    started = [threading.Event() for _ in range(n)]

    def drain(i: int) -> None:  # a full pipe would stop the child
        stdout = procs[i].stdout
        assert stdout is not None
        for line in stdout:
            started[i].set()
            if line.startswith("saved"):
                saved[i] += 1
        started[i].set()

    threads = [threading.Thread(target=drain, args=(i,), daemon=True) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for i, event in enumerate(started):
            event.wait(60)
            if procs[i].poll() is not None:
                raise RuntimeError(f"saver exited: {_stderr(procs[i])}")
        yield saved
        for i, proc in enumerate(procs):
            if proc.poll() is not None:
                raise RuntimeError(f"saver {i} exited: {_stderr(proc)}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc, t in zip(procs, threads, strict=True):
            proc.wait(timeout=60)
            t.join(timeout=60)
            if proc.stderr is not None:
                proc.stderr.close()


def opens_under_saves(
    workdir: Path,
    *,
    writers: int,
    opens: int,
    docs: int = DEFAULT_DOCS,
    log: Callable[[str], None] | None = None,
) -> OpenReport:
    """Open a collection ``opens`` times while ``writers`` child processes keep saving it."""
    from rag_retrievers import Retriever

    versions = Versions(docs)
    references = References(versions)
    path = workdir / f"opened-{writers}"
    save_first_version(path, versions)
    report = OpenReport(writers)
    with _savers(path, versions, writers) as saved:
        before = sum(saved)
        for n in range(opens):
            report.opens += 1
            try:
                retriever = Retriever.open(path)
                references.check(retriever, lambda j: j >= 0, full=n % FULL_CHECK_EVERY == 0)
            except Exception as exc:  # every failure counts, whatever its type
                report.failed += 1
                if len(report.failures) < 5:
                    report.failures.append(f"open {n + 1}: {type(exc).__name__}: {exc}")
            if log is not None and (n + 1) % 100 == 0:
                log(f"{writers} saving: {n + 1}/{opens} opens, {report.failed} failed")
        report.saves_meanwhile = sum(saved) - before
    return report


# -- searches under a non-stop writer ----------------------------------------------------------


@dataclass
class ReadsReport:
    adds: int
    batch: int
    searches: list[int]  # per reader thread

    @property
    def floor(self) -> int:
        """The fewest searches each reader must complete."""
        return max(1, self.adds // ADDS_PER_SEARCH)


def searches_under_busy_writer(
    *, adds: int = DEFAULT_ADDS, batch: int = DEFAULT_BATCH, readers: int = DEFAULT_READERS
) -> ReadsReport:
    """One thread adds ``batch`` new documents ``adds`` times back to back; ``readers`` threads
    search until it is done. Counts each reader's completed searches."""
    from rag_retrievers import BM25

    versions = Versions(DEFAULT_DOCS)
    bm25 = BM25()
    bm25.add(versions.first())
    counts = [0] * readers
    done = threading.Event()
    start = threading.Barrier(readers + 1)
    errors: list[BaseException] = []

    def reader(i: int) -> None:
        start.wait()
        try:
            while not done.is_set():
                bm25.search(QUERIES[i % len(QUERIES)], k=K)
                counts[i] += 1
        except BaseException as exc:  # raised again in the caller's thread
            errors.append(exc)

    def writer() -> None:
        start.wait()
        try:
            first = versions.size(0)
            for a in range(adds):
                bm25.add([versions.document(first + a * batch + i, 0) for i in range(batch)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return ReadsReport(adds, batch, counts)


# -- the command -------------------------------------------------------------------------------


def add_trust_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench trust`` to ``parser``."""
    parser.add_argument(
        "--kills",
        type=int,
        metavar="N",
        default=DEFAULT_KILLS,
        help="SIGKILLs of a saving process (default: %(default)s)",
    )
    parser.add_argument(
        "--flips",
        type=int,
        metavar="N",
        default=None,
        help="manifest bit flips, a seeded sample (default: every bit)",
    )
    parser.add_argument(
        "--opens",
        type=int,
        metavar="N",
        default=DEFAULT_OPENS,
        help="opens per number of saving processes (default: %(default)s)",
    )
    parser.add_argument(
        "--writers",
        metavar="LIST",
        default=",".join(map(str, DEFAULT_WRITERS)),
        help="numbers of concurrently saving processes (default: %(default)s)",
    )
    parser.add_argument(
        "--docs",
        type=int,
        metavar="N",
        default=DEFAULT_DOCS,
        help="documents in the saved collections (default: %(default)s)",
    )
    parser.add_argument(
        "--adds",
        type=int,
        metavar="N",
        default=DEFAULT_ADDS,
        help="adds by the non-stop writer (default: %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        default=DEFAULT_BATCH,
        help="documents per add (default: %(default)s)",
    )
    parser.add_argument(
        "--readers",
        type=int,
        metavar="N",
        default=DEFAULT_READERS,
        help="searching threads (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="kill points and flip sample")
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        default=None,
        help="where the collections go (default: a temporary folder, removed)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _writer_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise InvalidInputError(
            f"--writers takes a comma-separated list of counts >= 1, got {text!r}"
        )
    return counts


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("kills", "opens", "adds"):
        if getattr(args, name) < 0:
            raise InvalidInputError(f"--{name} must be >= 0, got {getattr(args, name)}")
    for name in ("docs", "batch", "readers"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.flips is not None and args.flips < 1:
        raise InvalidInputError(f"--flips must be >= 1, got {args.flips}")


def run_trust(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every check with the parsed options; the report (JSON values) and its verdict."""
    writers = _writer_counts(args.writers)
    report: dict[str, Any] = {"docs": args.docs, "seed": args.seed}
    log(f"SIGKILL during saves: {args.kills}")
    kills = kills_during_saves(workdir, kills=args.kills, docs=args.docs, seed=args.seed, log=log)
    report["kills"] = asdict(kills)
    log("manifest bit flips")
    report["flips"] = asdict(manifest_bit_flips(workdir, limit=args.flips, seed=args.seed))
    report["opens"] = []
    for n in writers if args.opens else ():
        log(f"opens while {n} saving")
        opens = opens_under_saves(workdir, writers=n, opens=args.opens, docs=args.docs, log=log)
        report["opens"].append(asdict(opens))
    log(f"searches under a non-stop writer: {args.adds} adds of {args.batch}")
    reads = searches_under_busy_writer(adds=args.adds, batch=args.batch, readers=args.readers)
    report["reads"] = {**asdict(reads), "floor": reads.floor}
    flips = report["flips"]
    report["ok"] = (
        kills.exact == kills.kills
        and not flips["different"]
        and not flips["other_errors"]
        and all(not o["failed"] for o in report["opens"])
        and min(reads.searches) >= reads.floor
    )
    return report


def format_trust_report(report: dict[str, Any]) -> str:
    """The table ``bench trust`` prints."""
    rows: list[tuple[object, ...]] = [("check", "tried", "ok", "failed", "detail")]
    k = report["kills"]
    rows.append(
        (
            "SIGKILL during a save",
            k["kills"],
            k["exact"],
            k["kills"] - k["exact"],
            f"{k['mid_save']:,} killed mid-save ({k['mid_save_kept']:,} reopened as that save, "
            "the rest as the one before); ok: reopened as exactly one completed save",
        )
    )
    f = report["flips"]
    rows.append(
        (
            "manifest.json bit flips",
            f["tried"],
            f["refused"] + f["identical"],
            f["different"] + f["other_errors"],
            f"{f['refused']:,} refused, {f['identical']:,} identical results, "
            f"{f['different']:,} silently different, {f['other_errors']:,} other errors",
        )
    )
    for o in report["opens"]:
        saving = "1 process saves" if o["writers"] == 1 else f"{o['writers']} processes save"
        rows.append(
            (
                f"opens while {saving}",
                o["opens"],
                o["opens"] - o["failed"],
                o["failed"],
                f"{o['saves_meanwhile']:,} saves meanwhile",
            )
        )
    r = report["reads"]
    short = sum(count < r["floor"] for count in r["searches"])
    rows.append(
        (
            "searching threads, non-stop writer",
            len(r["searches"]),
            len(r["searches"]) - short,
            short,
            f"searches each: {', '.join(map(str, r['searches']))} during {r['adds']} adds of "
            f"{r['batch']} documents (at least {r['floor']} needed)",
        )
    )
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [
        f"{row[0]:<{widths[0]}}  "
        + "  ".join(f"{row[i]:>{widths[i]}}" for i in (1, 2, 3))
        + f"  {row[4]}"
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    examples = [
        *k["failures"],
        *f["examples"],
        *(e for o in report["opens"] for e in o["failures"]),
    ]
    if examples:
        lines += ["failures, examples:", *(f"  {e}" for e in examples)]
    lines.append(f"verdict: {'all checks hold' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)


def main_trust(args: argparse.Namespace) -> int:
    """Run ``bench trust`` with the parsed options; 0 if every check holds, else 1."""
    _check_counts(args)
    _writer_counts(args.writers)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"[bench trust] {message}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        report = run_trust(args, Path(tempfile.mkdtemp(prefix="trust-", dir=args.dir)), log)
    else:
        with tempfile.TemporaryDirectory(prefix="rag-trust-") as tmp:
            report = run_trust(args, Path(tmp), log)
    report["wall_s"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(report_json(report))
    else:
        print(format_trust_report(report))
        print(f"wall time: {report['wall_s']:.0f} s")
    return 0 if report["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--saver"] and len(argv) == 4:
        return saver_main(argv[1], int(argv[2]), int(argv[3]))
    parser = argparse.ArgumentParser(prog="rag-retrievers bench trust", description=__doc__)
    add_trust_arguments(parser)
    try:
        return main_trust(parser.parse_args(argv))
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
