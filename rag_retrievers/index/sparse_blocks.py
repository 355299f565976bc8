"""Approximate top-k over learned-sparse vectors: blocked, summarised posting lists (Seismic).

A :class:`BlockIndex` holds, for the rows it was built over, each term's pruned posting list cut
into blocks of similar rows with one quantised summary vector per block (built by
:mod:`rag_retrievers.scoring.blocks`). A query (Bruch et al., SIGIR 2024):

1. keeps its ``query_terms`` heaviest terms (query-term pruning);
2. scores the summaries of those terms' blocks (one gather and one segmented sum);
3. visits the blocks best summary first, in rounds of doubling size: a round's rows are scored
   exactly on the forward index (rows x terms, one sparse product), the k-th best score so far
   becomes the threshold, and the blocks whose summary score is below ``heap_factor`` x the
   threshold are skipped;
4. returns the best rows by their exact scores.

Rows added after the build (the tail) are scored exactly on the forward index, deleted rows and
filters are a boolean mask applied before scoring: the block index never changes after its
build, :class:`~rag_retrievers.index.sparse_approx.ApproximateIndex` decides when to rebuild it.

Saved as plain ``.npy`` arrays and a JSON header; :meth:`BlockIndex.read` checks every array
against the others (shapes, dtypes, pointer monotonicity, row and term ranges) before a search
can index with them: the collection folder is untrusted input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError, is_finite_number
from rag_retrievers.index.npy import load_npy
from rag_retrievers.scoring.blocks import (
    block_summaries,
    cluster_lists,
    one_blas_thread,
    prune_globally,
    ranges,
    segment_sums,
    sketch,
    summaries_by_term,
    top_per_row,
)

FORMAT = 1
#: a posting list keeps at most this many times ``postings`` (Seismic's ``max_fraction``)
MAX_FRACTION = 1.5
#: dimensions of the random projection the blocking estimates inner products in
SKETCH_DIM = 32
#: entries of each row a block summary is taken from (Seismic's ``doc_cut`` idea)
SUMMARY_DOC_TERMS = 1000
#: blocks scored in the first round of a query; each later round at most GROWTH times more
FIRST_ROUND = 16
GROWTH = 4
_SEED = 0
_INT = (np.int32, np.int64)


@dataclass(frozen=True)
class ApproximateSearch:
    """Settings of approximate learned-sparse search (Seismic's parameters, our names).

    - ``postings``: entries a posting list keeps on average (static pruning, Seismic's
      ``n_postings``): the index keeps the ``postings`` x terms largest values overall, at most
      1.5 x ``postings`` per list (Seismic's ``max_fraction``); more: higher recall, larger
      index, slower build.
    - ``block_fraction``: blocks per list as a share of its kept postings (``centroid_fraction``).
    - ``summary_energy``: share of a block summary's L1 mass kept (``summary_energy``).
    - ``query_terms``: the query's heaviest terms whose lists are visited (``query_cut``).
    - ``heap_factor``: a block is skipped when its summary scores below this x the current k-th
      best score; lower: more blocks visited, higher recall. 0.7: at 0.8, recall@10 against
      exact was 0.91 on 200,000 documents of ``bench sparse`` (0.99 at 0.7, 1.3 ms p50 against
      1.1 ms); every miss was a skipped block, none a pruned posting.
    - ``min_documents``: collections with fewer live documents are searched exactly (the exact
      index is fast there and approximation buys nothing).

    >>> ApproximateSearch(query_terms=12).query_terms
    12
    """

    postings: int = 2000
    block_fraction: float = 0.1
    summary_energy: float = 0.4
    query_terms: int = 10
    heap_factor: float = 0.7
    min_documents: int = 10_000

    def __post_init__(self) -> None:
        for name in ("postings", "query_terms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(
                    f"ApproximateSearch {name} must be an int >= 1, got {value!r}"
                )
        value = self.min_documents
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(
                f"ApproximateSearch min_documents must be an int >= 0, got {value!r}"
            )
        for name in ("block_fraction", "summary_energy", "heap_factor"):
            value = getattr(self, name)
            if not is_finite_number(value) or not 0 < value <= 1:
                raise InvalidInputError(
                    f"ApproximateSearch {name} must be a number in (0, 1], got {value!r}"
                )

    @classmethod
    def from_config(cls, value: object) -> ApproximateSearch:
        """The settings a :meth:`config` value stands for: ``"approximate"`` (the defaults) or a
        mapping of field names."""
        if value == "approximate":
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise InvalidInputError(
                f"search must be 'exact', 'approximate', an ApproximateSearch or a mapping of its "
                f"fields; got {value!r}"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise InvalidInputError(
                f"search: unknown setting {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(names))}"
            )
        return cls(**dict(value))

    def config(self) -> str | dict[str, Any]:
        """``"approximate"`` for the defaults, else the fields as a JSON-ready dict."""
        return "approximate" if self == ApproximateSearch() else asdict(self)

    @property
    def list_cap(self) -> int:
        """The most postings one list keeps."""
        return int(MAX_FRACTION * self.postings)

    def build_settings(self) -> dict[str, Any]:
        """The settings a built index depends on (a saved one is reused when they match)."""
        return {
            "postings": self.postings,
            "block_fraction": self.block_fraction,
            "summary_energy": self.summary_energy,
            "sketch_dim": SKETCH_DIM,
            "summary_doc_terms": SUMMARY_DOC_TERMS,
        }


@dataclass(frozen=True)
class BlockIndex:
    """Blocked posting lists over rows ``0..n_rows-1`` (see the module's docstring).

    Term ``t``'s blocks are ``list_blocks[t]..list_blocks[t+1]``; block ``b``'s rows are
    ``rows[block_starts[b]:block_starts[b+1]]``. Summaries are stored per list and term
    (:func:`~rag_retrievers.scoring.blocks.summaries_by_term`): list ``t``'s summary terms are
    ``pair_terms[list_pairs[t]:list_pairs[t+1]]``, the blocks holding pair ``p``'s term are
    ``entry_blocks[pair_starts[p]:pair_starts[p+1]]`` at levels ``entry_levels`` (uint8) times
    the block's ``scales``.
    """

    n_rows: int
    list_blocks: np.ndarray
    block_starts: np.ndarray
    rows: np.ndarray
    scales: np.ndarray
    list_pairs: np.ndarray
    pair_terms: np.ndarray
    pair_starts: np.ndarray
    entry_blocks: np.ndarray
    entry_levels: np.ndarray
    settings: dict[str, Any]

    @classmethod
    def build(
        cls, forward: sp.csr_matrix, live: np.ndarray, search: ApproximateSearch
    ) -> BlockIndex:
        """Index the rows of ``forward`` (rows x terms) that ``live`` marks."""
        n_rows, _width = forward.shape
        kept = np.flatnonzero(live[:n_rows]).astype(np.int32)
        vectors = forward[kept] if len(kept) < n_rows else forward
        postings = prune_globally(vectors.tocsc(), search.postings, search.list_cap)
        in_lists = np.zeros(len(kept), dtype=bool)
        in_lists[postings.indices] = True
        sketches = np.zeros((len(kept), SKETCH_DIM), dtype=np.float32)
        if in_lists.any():
            sketches[in_lists] = sketch(vectors[in_lists], SKETCH_DIM, _SEED)
        with one_blas_thread():
            local_rows, list_blocks, block_starts = cluster_lists(
                postings, sketches, search.block_fraction, seed=_SEED
            )
        cut = top_per_row(vectors, SUMMARY_DOC_TERMS)
        list_of_block = np.repeat(np.arange(len(list_blocks) - 1), np.diff(list_blocks))
        starts, terms, levels, scales = block_summaries(
            cut, local_rows, block_starts, search.summary_energy, list_of_block
        )
        list_pairs, pair_terms, pair_starts, entry_blocks, entry_levels = summaries_by_term(
            list_blocks, starts, terms, levels
        )
        built = cls(
            n_rows=n_rows,
            list_blocks=list_blocks,
            block_starts=block_starts,
            rows=kept[local_rows] if len(kept) < n_rows else local_rows,
            scales=scales,
            list_pairs=list_pairs,
            pair_terms=pair_terms,
            pair_starts=pair_starts,
            entry_blocks=entry_blocks,
            entry_levels=entry_levels,
            settings=search.build_settings(),
        )
        built.pair_keys  # noqa: B018 - computed here, not by the first query
        return built

    @property
    def nbytes(self) -> int:
        return self.pair_keys.nbytes + sum(getattr(self, name).nbytes for name in self._ARRAYS)

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        term_ids: np.ndarray,
        weights: np.ndarray,
        k: int,
        score_rows: Callable[[np.ndarray], np.ndarray],
        search: ApproximateSearch,
        *,
        allowed: np.ndarray | None = None,
        seed: tuple[np.ndarray, np.ndarray] | None = None,
        seen: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate rows and their exact scores (unsorted; the caller takes the top ``k``).

        ``term_ids``/``weights`` are the query's non-zero entries (all positive);
        ``score_rows(rows)`` gives exact scores; ``allowed`` (bool per row) excludes rows;
        ``seed`` is (rows, scores) already scored (the tail). ``seen`` is a scratch array of
        ``n_rows`` False values, False again on return: a caller that keeps one per thread
        saves the page faults of a fresh one per query.
        """
        heaviest = term_ids[np.argsort(-weights, kind="stable")[: search.query_terms]]
        heaviest = heaviest[heaviest < len(self.list_blocks) - 1]
        first = self.list_blocks[heaviest]
        counts = self.list_blocks[heaviest + 1] - first
        blocks = ranges(first, counts)
        found_rows = [seed[0]] if seed is not None else []
        found_scores = [seed[1]] if seed is not None else []
        if not len(blocks):
            return _joined(found_rows, found_scores)
        dots = self._summary_scores(heaviest, counts, term_ids, weights) * self.scales[blocks]
        order = np.argsort(-dots, kind="stable")
        blocks, dots = blocks[order], dots[order]
        pool = np.concatenate(found_scores) if found_scores else np.zeros(0, np.float32)
        threshold = _kth(pool, k)
        if seen is None:
            seen = np.zeros(self.n_rows, dtype=bool)
        marked: list[np.ndarray] = []
        try:
            position, step = 0, FIRST_ROUND
            while position < len(blocks):
                end = min(position + step, len(blocks))
                if threshold > -np.inf:
                    # blocks are sorted by summary score: those above the bar are a prefix
                    bar = search.heap_factor * threshold
                    end = min(end, int(np.searchsorted(-dots, -bar, side="right")))
                    if end <= position:
                        break
                chosen = blocks[position:end]
                starts = self.block_starts[chosen]
                rows = self.rows[ranges(starts, self.block_starts[chosen + 1] - starts)]
                rows = np.unique(rows[~seen[rows]])
                seen[rows] = True
                marked.append(rows)
                if allowed is not None:
                    rows = rows[allowed[rows]]
                if len(rows):
                    scores = score_rows(rows)
                    found_rows.append(rows)
                    found_scores.append(scores)
                    pool = np.concatenate([pool, scores])
                    threshold = _kth(pool, k)
                position, step = end, step * GROWTH
        finally:
            for rows in marked:
                seen[rows] = False
        return _joined(found_rows, found_scores)

    def _summary_scores(
        self, lists: np.ndarray, counts: np.ndarray, term_ids: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """Unscaled summary scores of the blocks of ``lists`` (``counts`` blocks each, in that
        order): every (list, query term) pair is looked up at once among the stored pairs and
        only their entries are added up (Seismic's layout)."""
        total = int(counts.sum())
        keys = self.pair_keys
        if not len(keys) or not total:
            return np.zeros(total)
        wanted = (lists.astype(np.int64)[:, None] << 32 | term_ids[None, :]).ravel()
        found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        hit = keys[found] == wanted
        matched = found[hit]
        pair_weights = np.tile(weights, len(lists))[hit]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        shifts = np.repeat(offsets - self.list_blocks[lists], len(term_ids))[hit]
        starts = self.pair_starts[matched]
        lengths = self.pair_starts[matched + 1] - starts
        entries = ranges(starts, lengths)
        local = self.entry_blocks[entries] + np.repeat(shifts, lengths)
        contributions = self.entry_levels[entries] * np.repeat(pair_weights, lengths)
        return np.bincount(local, weights=contributions, minlength=total)[:total]

    @cached_property
    def pair_keys(self) -> np.ndarray:
        """Each stored (list, term) pair as ``list << 32 | term``: ascending, one lookup each."""
        lists = np.repeat(
            np.arange(len(self.list_pairs) - 1, dtype=np.int64), np.diff(self.list_pairs)
        )
        return lists << 32 | self.pair_terms

    # -- rows renumbered -----------------------------------------------------------------------

    def compacted(self, live: np.ndarray) -> BlockIndex:
        """The same blocks over the live rows renumbered ``0..`` in order (as a saved collection
        holds them); deleted rows leave their blocks."""
        covered = live[: self.n_rows]
        new_number = np.cumsum(covered) - 1
        keep = covered[self.rows]
        starts = np.concatenate([[0], np.cumsum(segment_sums(keep, self.block_starts))])
        return BlockIndex(
            n_rows=int(covered.sum()),
            list_blocks=self.list_blocks,
            block_starts=starts,
            rows=new_number[self.rows[keep]].astype(np.int32),
            scales=self.scales,
            list_pairs=self.list_pairs,
            pair_terms=self.pair_terms,
            pair_starts=self.pair_starts,
            entry_blocks=self.entry_blocks,
            entry_levels=self.entry_levels,
            settings=self.settings,
        )

    # -- persistence ---------------------------------------------------------------------------

    _ARRAYS = (
        "list_blocks",
        "block_starts",
        "rows",
        "scales",
        "list_pairs",
        "pair_terms",
        "pair_starts",
        "entry_blocks",
        "entry_levels",
    )

    def write(self, folder: Path, prefix: str = "blocks") -> None:
        for name in self._ARRAYS:
            np.save(folder / f"{prefix}_{name}.npy", getattr(self, name))
        header = {"format": FORMAT, "n_rows": self.n_rows, "settings": self.settings}
        (folder / f"{prefix}.json").write_text(json.dumps(header), encoding="utf-8")

    @classmethod
    def read(
        cls, folder: Path, n_rows: int, n_terms: int, prefix: str = "blocks"
    ) -> BlockIndex | None:
        """The block index saved in ``folder``, or ``None`` when none was saved. Raises
        :class:`CorruptCollectionError` unless every array is consistent with the others and
        with a collection of ``n_rows`` rows and ``n_terms`` terms."""
        header_file = folder / f"{prefix}.json"
        if not header_file.exists():
            return None
        where = f"{folder}: approximate index"
        try:
            header = json.loads(header_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CorruptCollectionError(f"{where}: {prefix}.json unreadable: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CorruptCollectionError(f"{where}: {prefix}.json is not format {FORMAT}")
        covered, settings = header.get("n_rows"), header.get("settings")
        if type(covered) is not int or not 0 <= covered <= n_rows:
            raise CorruptCollectionError(f"{where}: covers {covered!r} rows of {n_rows}")
        if not isinstance(settings, dict):
            raise CorruptCollectionError(f"{where}: no build settings")

        def load(name: str, dtypes: Any, shape: tuple[int | None, ...]) -> np.ndarray:
            return load_npy(folder / f"{prefix}_{name}.npy", dtypes=dtypes, shape=shape)

        list_blocks = load("list_blocks", _INT, (None,))
        if not 1 <= len(list_blocks) <= n_terms + 1:
            raise CorruptCollectionError(f"{where}: {len(list_blocks) - 1} lists, {n_terms} terms")
        n_blocks = int(list_blocks[-1])
        _pointers(where, "list_blocks", list_blocks, n_blocks)
        block_starts = load("block_starts", _INT, (n_blocks + 1,))
        rows = load("rows", np.int32, (None,))
        _pointers(where, "block_starts", block_starts, len(rows))
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= covered):
            raise CorruptCollectionError(f"{where}: rows outside 0..{covered - 1}")
        scales = load("scales", np.float32, (n_blocks,))
        if not np.isfinite(scales).all() or (scales < 0).any():
            raise CorruptCollectionError(f"{where}: block scales that are not finite and >= 0")
        list_pairs = load("list_pairs", _INT, (len(list_blocks),))
        pair_terms = load("pair_terms", np.int32, (None,))
        _pointers(where, "list_pairs", list_pairs, len(pair_terms))
        list_of_pair = np.repeat(np.arange(len(list_pairs) - 1), np.diff(list_pairs))
        if len(pair_terms) and (int(pair_terms.min()) < 0 or int(pair_terms.max()) >= n_terms):
            raise CorruptCollectionError(f"{where}: summary terms outside 0..{n_terms - 1}")
        same_list = list_of_pair[1:] == list_of_pair[:-1]
        if (np.diff(pair_terms)[same_list] <= 0).any():
            raise CorruptCollectionError(f"{where}: a list's summary terms are not ascending")
        pair_starts = load("pair_starts", _INT, (len(pair_terms) + 1,))
        entry_blocks = load("entry_blocks", np.int32, (None,))
        _pointers(where, "pair_starts", pair_starts, len(entry_blocks))
        entry_levels = load("entry_levels", np.uint8, (len(entry_blocks),))
        # each entry names a block of its own list: the search adds it up at that block's place
        list_of_entry = np.repeat(list_of_pair, np.diff(pair_starts))
        low, high = list_blocks[list_of_entry], list_blocks[list_of_entry + 1]
        if ((entry_blocks < low) | (entry_blocks >= high)).any():
            raise CorruptCollectionError(f"{where}: a summary entry outside its list's blocks")
        return cls(
            n_rows=covered,
            list_blocks=list_blocks.astype(np.int64, copy=False),
            block_starts=block_starts.astype(np.int64, copy=False),
            rows=rows,
            scales=scales,
            list_pairs=list_pairs.astype(np.int64, copy=False),
            pair_terms=pair_terms,
            pair_starts=pair_starts.astype(np.int64, copy=False),
            entry_blocks=entry_blocks,
            entry_levels=entry_levels,
            settings=settings,
        )


def _pointers(where: str, name: str, pointers: np.ndarray, total: int) -> None:
    if not len(pointers) or pointers[0] != 0 or pointers[-1] != total:
        raise CorruptCollectionError(f"{where}: {name} must run from 0 to {total}")
    if (np.diff(pointers) < 0).any():
        raise CorruptCollectionError(f"{where}: {name} decreases")


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th largest score, or -inf when there are fewer than ``k``."""
    if len(scores) < k:
        return -np.inf
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def _joined(rows: list[np.ndarray], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows).astype(np.int64, copy=False), np.concatenate(scores)
