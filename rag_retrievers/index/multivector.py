"""A multi-vector (late-interaction) index: compact token storage, candidates, exact MaxSim.

Storage
-------
Each document (a *row*) is a run of token vectors. Tokens are stored by a
:class:`~rag_retrievers.index.token_codecs.TokenCodec` (ColBERTv2 ``residual``, the default;
``fp16`` or ``int8``) in *segments*: the segment read from a saved collection is memory-mapped
(:func:`~rag_retrievers.index.npy.load_npy`, which checks each file's header first), so a collection
larger than RAM opens and only the tokens a query scores are read; each add appends an
in-memory segment. Segments are never modified: a delete marks the row dead, an upsert of
unchanged text points the new row at the old tokens, and a save writes the live rows' tokens
into fresh files (compaction). Optional token pooling (``pool_factor``) merges similar tokens
of a document at index time (:func:`rag_retrievers.scoring.maxsim.pool_tokens`).

The defaults are ColBERTv2's and RAGatouille's: residual codes of 2 bits a dimension over the
nearest centroid, and ``pool_factor=2``. A 128-dimension ColBERT then stores 34 bytes per kept
vector, about 17 per document token; the 384-dimension MiniLM stand-in 98 and 49. On SciFact
with the stand-in that costs 0.003 nDCG@10 against fp16 without pooling, for 1/16 of the
storage (``rag-retrievers bench colbert``; the README has the figures).

Search
------
Every token carries the id of its nearest centroid (spherical k-means over the token vectors).
Centroids are trained at the first add and again whenever the collection has grown fourfold
since (all codes reassigned, amortised linear cost); tokens added in between take the nearest
existing centroid, as in PLAID. A search picks candidate documents from those centroid ids
(PLAID's centroid interaction with pruning: :mod:`rag_retrievers.scoring.plaid`, over inverted
lists built once after each write) and scores the ``ndocs`` best exactly by MaxSim over their
stored tokens. Exact scoring reads only the candidates' tokens, in batches of about
4,096, and takes one matrix product per batch with all the query's tokens; residual tokens
are never decoded: ``q . normalise(c + r)`` is ``(q . c + q . r) / |c + r|``, with ``q . c``
from the query's centroid scores (already computed for the candidates), ``r`` from a byte ->
values table (no bit unpacking) and ``1 / |c + r|`` cached per stored token (4 bytes each,
computed in blocks the first time a search touches them). A segmented max
(``np.maximum.reduceat``) then gives each document's MaxSim; nothing loops over documents or
tokens in Python.

``mode="exhaustive"`` scores every (matching) document exactly: the reference, and what ``auto``
does for collections of at most ``exhaustive_max_tokens`` tokens or filters that match few.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.npy import load_npy
from rag_retrievers.index.token_codecs import (
    COMPRESSIONS,
    Compression,
    TokenCodec,
    default_centroids,
)
from rag_retrievers.scoring.kmeans import assign_centroids, train_centroids
from rag_retrievers.scoring.maxsim import pool_tokens
from rag_retrievers.scoring.plaid import (
    CentroidLists,
    centroid_candidates,
    centroid_lists,
    token_ranges,
)
from rag_retrievers.scoring.topk import top_k

SearchMode = Literal["auto", "candidates", "exhaustive"]
SEARCH_MODES: tuple[str, ...] = ("auto", "candidates", "exhaustive")
#: tokens scored per matrix product (a candidate batch, or a step of an exhaustive search): their
#: float32 terms (6 MiB at 384 dimensions) stay in cache between decoding and the product
_SCORE_CHUNK_TOKENS = 4096
#: residual tokens' inverse norms are computed (and cached) in blocks of this many tokens
_NORM_BLOCK = 4096
#: queries scored together in one pass over the tokens (their similarities share memory)
_QUERIES_PER_SCAN = 32
#: retrain centroids when the collection holds this many times the tokens they were trained on
_RETRAIN_GROWTH = 4
#: at most this many tokens (per centroid) train k-means
_TRAIN_SAMPLE_PER_CENTROID = 32


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class IndexSettings:
    """How tokens are stored and searched; JSON values, recorded in a collection's manifest.

    - ``compression``: ``residual`` (default: ``nbits`` bits a dimension over the nearest
      centroid, ColBERTv2's codec), ``fp16`` (2 bytes a dimension) or ``int8``.
    - ``pool_factor``: keep about 1/``pool_factor`` of each document's token vectors (default 2,
      as RAGatouille; 1 keeps all).
    - ``n_centroids``: k-means centroids (None: ``default_centroids(tokens)``).
    - ``nprobe``: centroids probed per query token; ``ndocs``: documents scored exactly.
    - ``mode``: ``auto``, ``candidates`` or ``exhaustive``; ``auto`` is exhaustive up to
      ``exhaustive_max_tokens`` tokens to score.
    """

    compression: Compression = "residual"
    nbits: int = 2
    pool_factor: int = 2
    n_centroids: int | None = None
    nprobe: int = 2
    ndocs: int = 256
    mode: SearchMode = "auto"
    exhaustive_max_tokens: int = 200_000

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise InvalidInputError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}"
            )
        if self.nbits not in (1, 2, 4, 8) or isinstance(self.nbits, bool):
            raise InvalidInputError(f"nbits must be 1, 2, 4 or 8, got {self.nbits!r}")
        if self.mode not in SEARCH_MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(SEARCH_MODES)}, got {self.mode!r}"
            )
        _positive_int("pool_factor", self.pool_factor)
        if self.n_centroids is not None:
            _positive_int("n_centroids", self.n_centroids)
        _positive_int("nprobe", self.nprobe)
        _positive_int("ndocs", self.ndocs)
        _positive_int("exhaustive_max_tokens", self.exhaustive_max_tokens, 0)


@dataclass(frozen=True)
class _Segment:
    """Tokens ``[start, start + n)`` of the index: codes and the codec's arrays; ``cache`` holds
    what scoring derives from them (residual tokens' inverse norms, filled block by block as
    searches touch them)."""

    start: int
    codes: np.ndarray
    arrays: dict[str, np.ndarray]
    cache: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def stop(self) -> int:
        return self.start + len(self.codes)


class MultiVectorIndex:
    """Rows of token vectors: add, delete, search by MaxSim, save and memory-map.

    >>> import numpy as np
    >>> index = MultiVectorIndex(2)
    >>> index.add_rows([np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [0.6, 0.8]])])
    [0, 1]
    >>> rows, scores = index.search([np.array([[0.0, 1.0]])], k=1)[0]
    >>> rows.tolist(), scores.round(2).tolist()
    ([1], [1.0])
    """

    def __init__(self, dimension: int, settings: IndexSettings | None = None) -> None:
        self.dimension = _positive_int("dimension", dimension)
        self.settings = settings or IndexSettings()
        self._segments: list[_Segment] = []
        self._starts = np.empty(0, dtype=np.int64)
        self._lengths = np.empty(0, dtype=np.int64)
        self._live = np.empty(0, dtype=bool)
        self._codec = TokenCodec(self.settings.compression, dimension, self.settings.nbits)
        self._trained_on = 0  # tokens the centroids were trained on
        self._lists: CentroidLists | None = None  # centroid <-> rows, built after writes

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return len(self._starts)

    @property
    def n_live(self) -> int:
        return int(self._live.sum())

    @property
    def n_tokens(self) -> int:
        """Tokens stored, those of deleted rows included until the next save."""
        return self._segments[-1].stop if self._segments else 0

    @property
    def live_tokens(self) -> int:
        return int(self._lengths[self._live].sum())

    @property
    def centroids(self) -> np.ndarray | None:
        return self._codec.centroids

    def bytes_per_token(self) -> float:
        """Bytes a stored token takes on disk: the codec's arrays plus its centroid id."""
        codes = 2 if (self.centroids is None or len(self.centroids) <= 65_536) else 4
        return float(self._codec.bytes_per_token() + codes)

    def lengths(self) -> np.ndarray:
        """Stored token vectors per row (after pooling); 0 for deleted rows."""
        return np.where(self._live, self._lengths, 0)

    # -- writes --------------------------------------------------------------------------------

    def add_rows(self, vectors: list[np.ndarray]) -> list[int]:
        """Append one row per array of L2-normalised token vectors; returns the new rows."""
        for v in vectors:
            if v.ndim != 2 or v.shape[1] != self.dimension:
                raise InvalidInputError(
                    f"token vectors must have shape (n, {self.dimension}), got {v.shape}"
                )
        if self.settings.pool_factor > 1:
            vectors = [pool_tokens(v, self.settings.pool_factor) for v in vectors]
        lengths = np.asarray([len(v) for v in vectors], dtype=np.int64)
        start = self.n_tokens
        flat = (
            np.concatenate(vectors).astype(np.float32)
            if vectors
            else np.empty((0, self.dimension), np.float32)
        )
        rows = self._append_rows(start + np.cumsum(lengths) - lengths, lengths)
        if len(flat):
            if self.centroids is None:
                self._train(flat)
            codes = assign_centroids(flat, self._require_centroids()).astype(self._code_dtype())
            self._segments.append(_Segment(start, codes, self._codec.encode(flat, codes)))
            if self.n_tokens >= _RETRAIN_GROWTH * self._trained_on:
                self._retrain()
        self._lists = None
        return rows

    def add_row_alias(self, source_row: int) -> int:
        """A new row holding the same tokens as ``source_row`` (an upsert of unchanged text)."""
        return self._append_rows(self._starts[[source_row]], self._lengths[[source_row]])[0]

    def _append_rows(self, starts: np.ndarray, lengths: np.ndarray) -> list[int]:
        first = self.n_rows
        self._starts = np.concatenate([self._starts, starts])
        self._lengths = np.concatenate([self._lengths, lengths])
        self._live = np.concatenate([self._live, np.ones(len(starts), dtype=bool)])
        self._lists = None
        return list(range(first, first + len(starts)))

    def delete_rows(self, rows: list[int]) -> None:
        if rows:
            self._live = self._live.copy()  # a snapshot may hold the old mask
            self._live[rows] = False

    def _code_dtype(self) -> type[np.unsignedinteger[Any]]:
        n = len(self._require_centroids())
        return np.uint16 if n <= 65_536 else np.uint32

    def _require_centroids(self) -> np.ndarray:
        if self.centroids is None:
            raise InvalidInputError("the index has no centroids yet")
        return self.centroids

    def _train(self, vectors: np.ndarray) -> None:
        """Fit centroids (and residual buckets) on ``vectors``, a sample of the collection."""
        k = self.settings.n_centroids or default_centroids(len(vectors))
        k = min(k, len(vectors))
        rng = np.random.default_rng(0)
        limit = max(k * _TRAIN_SAMPLE_PER_CENTROID, 1)
        sample = (
            vectors
            if len(vectors) <= limit
            else vectors[rng.choice(len(vectors), limit, replace=False)]
        )
        sample = np.asarray(sample, dtype=np.float32)
        centroids = train_centroids(sample, k)
        codec = TokenCodec(self._codec.compression, self.dimension, self._codec.nbits, centroids)
        self._codec = codec.fit_residuals(sample, assign_centroids(sample, centroids))
        self._trained_on = len(vectors)

    def _retrain(self) -> None:
        """New centroids over every stored token: codes (and residuals) encoded again."""
        everything = self._decode(np.arange(self.n_tokens, dtype=np.int64))
        self._train(everything)
        codes = assign_centroids(everything, self._require_centroids()).astype(self._code_dtype())
        self._segments = [_Segment(0, codes, self._codec.encode(everything, codes))]
        self._lists = None

    # -- reading tokens ------------------------------------------------------------------------

    def _gather(self, tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Codes and codec arrays of the given token indices, in their order (an alias row's
        tokens may lie in an earlier segment than the rows around it)."""
        if len(self._segments) == 1:  # np.asarray: a memory map's plain view indexes faster
            seg = self._segments[0]
            codes = np.asarray(seg.codes)[tokens]
            return codes, {n: np.asarray(a)[tokens] for n, a in seg.arrays.items()}
        stops = np.asarray([s.stop for s in self._segments])
        which = np.searchsorted(stops, tokens, side="right")
        first = self._segments[0]
        codes = np.empty(len(tokens), dtype=first.codes.dtype)
        arrays = {
            n: np.empty((len(tokens), *a.shape[1:]), dtype=a.dtype) for n, a in first.arrays.items()
        }
        for i in np.unique(which).tolist():
            seg = self._segments[i]
            picked = which == i
            local = tokens[picked] - seg.start
            codes[picked] = seg.codes[local]
            for name, a in seg.arrays.items():
                arrays[name][picked] = a[local]
        return codes, arrays

    def _decode(self, tokens: np.ndarray) -> np.ndarray:
        codes, arrays = self._gather(tokens)
        return self._codec.decode(arrays, codes)

    def row_vectors(self, row: int) -> np.ndarray:
        """The stored (decoded) token vectors of ``row``."""
        return self._decode(token_ranges(self._starts[[row]], self._lengths[[row]]))

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        queries: list[np.ndarray],
        k: int,
        mask: np.ndarray | None = None,
        mode: SearchMode | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows and MaxSim scores of the ``k`` best live rows (``mask``: rows allowed) per query,
        best first, ties by row."""
        mode = mode or self.settings.mode
        if mode not in SEARCH_MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        allowed = self._live if mask is None else self._live & mask[: self.n_rows]
        if mode == "auto":
            small = int(self._lengths[allowed].sum()) <= self.settings.exhaustive_max_tokens
            mode = "exhaustive" if small or self.centroids is None else "candidates"
        if mode == "exhaustive" or self.centroids is None:
            rows = np.flatnonzero(allowed)
            results = []
            for start in range(0, len(queries), _QUERIES_PER_SCAN):
                scores = self._exact(queries[start : start + _QUERIES_PER_SCAN], rows)
                results += [self._top(rows, s, k) for s in scores]
            return results
        centroids, lists = self._require_centroids(), self._centroid_lists()
        n_allowed = int(allowed.sum())
        results = []
        for query in queries:
            query = np.asarray(query, dtype=np.float32)
            centroid_scores = query @ centroids.T
            rows = self._candidates(centroid_scores, lists, allowed)
            if len(rows) < min(k, n_allowed):  # a selective filter: score all it allows
                rows = np.flatnonzero(allowed)
            scores = self._exact([query], rows, centroid_scores)[0]
            results.append(self._top(rows, scores, k))
        return results

    @staticmethod
    def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        positions, best = top_k(scores, k, candidates=np.ones(len(scores), dtype=bool))
        return rows[positions], best

    def _exact(
        self,
        queries: list[np.ndarray],
        rows: np.ndarray,
        centroid_scores: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(len(queries), len(rows))`` exact MaxSim scores.

        The rows' tokens are read in batches of about :data:`_SCORE_CHUNK_TOKENS`; each batch
        takes one matrix product with all the queries' tokens at once, on the codec's
        :meth:`~rag_retrievers.index.token_codecs.TokenCodec.scoring_terms` (residual tokens
        are not decoded: their score is ``(q . c + q . r) / |c + r|``, the centroid scores
        ``q . c`` gathered from ``centroid_scores`` (computed when not given), the inverse norms
        cached per segment), then a segmented max per row (``np.maximum.reduceat``).
        """
        out = np.zeros((len(queries), len(rows)), dtype=np.float32)
        sizes = [len(q) for q in queries]
        if not len(rows) or not sum(sizes):
            return out
        stacked = np.concatenate([np.asarray(q, dtype=np.float32) for q in queries])
        residual = self._codec.compression == "residual"
        by_centroid = None  # (centroids, query tokens): a token's row of it is gathered
        if residual:
            if centroid_scores is None:
                centroid_scores = stacked @ self._require_centroids().T
            by_centroid = np.ascontiguousarray(np.asarray(centroid_scores, np.float32).T)
        best = np.zeros((len(stacked), len(rows)), dtype=np.float32)  # per query token
        lengths = self._lengths[rows]
        ends = np.cumsum(lengths)
        start = 0
        while start < len(rows):
            budget = ends[start] - lengths[start] + _SCORE_CHUNK_TOKENS
            stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
            chunk_lengths = lengths[start:stop]
            nonempty = np.flatnonzero(chunk_lengths)
            if len(nonempty):
                tokens = token_ranges(self._starts[rows[start:stop]], chunk_lengths)
                codes, arrays = self._gather(tokens)
                norms = self._inverse_norms(tokens) if residual else None
                terms = self._codec.scoring_terms(arrays, norms)
                # (tokens, query tokens): BLAS runs a tall product faster than a wide one
                sims = terms.matrix @ stacked.T
                if terms.centroid_term and by_centroid is not None:
                    sims += by_centroid[codes]
                if terms.scale is not None:
                    sims *= terms.scale[:, None]
                offsets = (np.cumsum(chunk_lengths) - chunk_lengths)[nonempty]
                best[:, start + nonempty] = np.maximum.reduceat(sims, offsets, axis=0).T
            start = stop
        bounds = np.cumsum([0, *sizes])
        for i in range(len(queries)):  # a sum over each query's own tokens
            out[i] = best[bounds[i] : bounds[i + 1]].sum(axis=0)
        return out

    def _inverse_norms(self, tokens: np.ndarray) -> np.ndarray:
        """``1 / |c + r|`` of the given residual tokens, from each segment's cache; blocks of
        :data:`_NORM_BLOCK` tokens not seen before are computed first."""
        if len(self._segments) == 1:
            return self._segment_norms(self._segments[0], tokens)
        out = np.empty(len(tokens), dtype=np.float32)
        stops = np.asarray([s.stop for s in self._segments])
        which = np.searchsorted(stops, tokens, side="right")
        for i in np.unique(which).tolist():
            seg = self._segments[i]
            picked = which == i
            out[picked] = self._segment_norms(seg, tokens[picked] - seg.start)
        return out

    def _segment_norms(self, seg: _Segment, local: np.ndarray) -> np.ndarray:
        cache = seg.cache
        norms = cache.get("inverse_norms")
        if norms is not None and "done" not in cache:  # every block computed
            return norms[local]
        # searches run concurrently (under the read lock): one thread at a time fills blocks
        with seg.lock:
            norms = cache.get("inverse_norms")
            if norms is None:
                size = len(seg.codes)
                # "done" goes in first: norms without "done" reads as complete (above)
                cache["done"] = np.zeros(-(-size // _NORM_BLOCK), dtype=bool)
                norms = cache["inverse_norms"] = np.empty(size, dtype=np.float32)
            done = cache.get("done")
            if done is not None:  # until every block is computed
                blocks = np.unique(local // _NORM_BLOCK)
                for block in blocks[~done[blocks]].tolist():
                    part = slice(block * _NORM_BLOCK, (block + 1) * _NORM_BLOCK)
                    arrays = {name: a[part] for name, a in seg.arrays.items()}
                    norms[part] = self._codec.inverse_norms(arrays, seg.codes[part])
                    done[block] = True
                if done.all():
                    cache.pop("done", None)
            return norms[local]

    def candidates(self, query: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Up to ``ndocs`` allowed rows with the best approximate scores, ascending
        (:func:`~rag_retrievers.scoring.plaid.centroid_candidates` over this index's centroids)."""
        scores = np.asarray(query, dtype=np.float32) @ self._require_centroids().T
        return self._candidates(scores, self._centroid_lists(), allowed)

    def _candidates(
        self, centroid_scores: np.ndarray, lists: CentroidLists, allowed: np.ndarray
    ) -> np.ndarray:
        return centroid_candidates(
            centroid_scores,
            lists,
            allowed,
            nprobe=self.settings.nprobe,
            ndocs=self.settings.ndocs,
        )

    def centroid_idf(self, vectors: np.ndarray) -> np.ndarray:
        """``log((N + 1) / (df + 1))`` for each vector, where ``df`` counts the live rows holding
        a token of the vector's nearest centroid and ``N`` the live rows: how rare that region of
        the token space is in the collection (ColBERT-PRF's idf, by centroid, not by word)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(vectors):
            return np.empty(0, dtype=np.float32)
        indptr = self._centroid_lists().indptr
        cells = assign_centroids(vectors, self._require_centroids())
        df = (indptr[cells + 1] - indptr[cells]).astype(np.float64)
        return np.log((self.n_live + 1) / (df + 1)).astype(np.float32)

    def _centroid_lists(self) -> CentroidLists:
        """centroid <-> rows of the live rows (:class:`~rag_retrievers.scoring.plaid.
        CentroidLists`); built after writes, once."""
        lists = self._lists
        if lists is None:
            k = len(self._require_centroids())
            codes = np.concatenate([s.codes for s in self._segments]).astype(np.int64)
            lists = centroid_lists(codes, self._starts, self._lengths, self._live, k)
            self._lists = lists
        return lists

    # -- files ---------------------------------------------------------------------------------

    def snapshot(self) -> Callable[[Path, str], None]:
        """A writer of the live rows as they are now (segments are immutable, so the writer may
        run after the caller's lock is released). Files: ``{prefix}.json``, ``{prefix}.*.npy``."""
        segments, codec = list(self._segments), self._codec
        live = np.flatnonzero(self._live)
        starts, lengths = self._starts[live], self._lengths[live]
        total = int(lengths.sum())
        meta = {
            "dimension": self.dimension,
            "settings": asdict(self.settings),
            "rows": len(live),
            "tokens": total,
            "trained_on": self._trained_on,
        }
        view = MultiVectorIndex.__new__(MultiVectorIndex)
        view._segments, view._codec = segments, codec

        def write(folder: Path, prefix: str) -> None:
            (folder / f"{prefix}.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            np.save(folder / f"{prefix}.lengths.npy", lengths)
            for name in ("centroids", "cutoffs", "weights"):
                value = getattr(codec, name)
                if value is not None:
                    np.save(folder / f"{prefix}.{name}.npy", value)
            if not segments:
                return
            names = ("codes", *codec.array_names)
            outputs: dict[str, Any] = {}
            written = 0
            for chunk_start in range(0, len(live), 4096):
                sl = slice(chunk_start, chunk_start + 4096)
                tokens = token_ranges(starts[sl], lengths[sl])
                codes, arrays = view._gather(tokens)
                parts = {"codes": codes, **arrays}
                if not outputs:
                    for name in names:
                        part = parts[name]
                        outputs[name] = np.lib.format.open_memmap(
                            folder / f"{prefix}.{name}.npy",
                            mode="w+",
                            dtype=part.dtype,
                            shape=(total, *part.shape[1:]),
                        )
                for name in names:
                    outputs[name][written : written + len(tokens)] = parts[name]
                written += len(tokens)
            for out in outputs.values():
                out.flush()

        return write

    @classmethod
    def read(cls, folder: Path, prefix: str, n_rows: int) -> MultiVectorIndex:
        """Open what :meth:`snapshot` wrote; token arrays are memory-mapped, not loaded.

        Nothing in the files is trusted: each ``.npy`` header is checked against the file's size
        and the expected dtype and shape before anything is allocated or mapped, and the arrays
        against each other (row lengths >= 0 summing to the tokens, every code below the
        centroid count, the codec's arrays a row per token), so a damaged or crafted file raises
        :class:`~rag_retrievers.errors.CorruptCollectionError` here rather than an
        ``IndexError`` in a later search.
        """
        file = folder / f"{prefix}.json"
        try:
            meta = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or not isinstance(meta.get("settings"), dict):
                raise ValueError("not a JSON object with a settings object")
            dimension = _meta_count(meta, "dimension", 1)
            tokens = _meta_count(meta, "tokens", 0)
            trained_on = _meta_count(meta, "trained_on", 0, default=0)
            index = cls(dimension, IndexSettings(**meta["settings"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptCollectionError(f"{file}: multi-vector index unreadable: {exc}") from None
        settings = index.settings
        codec = TokenCodec.read(folder, prefix, settings.compression, dimension, settings.nbits)
        lengths = load_npy(
            folder / f"{prefix}.lengths.npy", dtypes=(np.int64, np.int32), shape=(None,)
        ).astype(np.int64)
        if len(lengths) != n_rows or int(lengths.sum()) != tokens:
            raise CorruptCollectionError(
                f"{folder}: the index holds {len(lengths)} rows and {lengths.sum()} tokens, "
                f"the documents {n_rows} rows and the metadata {tokens} tokens"
            )
        if len(lengths) and lengths.min() < 0:
            raise CorruptCollectionError(f"{folder}/{prefix}.lengths.npy holds negative lengths")
        arrays = {}
        if tokens:
            if codec.centroids is None:
                raise CorruptCollectionError(
                    f"{folder}: {tokens} tokens but no {prefix}.centroids.npy"
                )
            code_types = (np.uint16, np.uint32)
            codes_file = folder / f"{prefix}.codes.npy"
            codes = load_npy(codes_file, dtypes=code_types, shape=(tokens,), mmap_mode="r")
            # one pass over 2 bytes a token; the first candidate search reads them all anyway
            if int(codes.max()) >= len(codec.centroids):
                raise CorruptCollectionError(
                    f"{codes_file}: centroid id {int(codes.max())} with "
                    f"{len(codec.centroids)} centroids"
                )
            for name, (dtype, tail) in codec.token_layout().items():
                arrays[name] = load_npy(
                    folder / f"{prefix}.{name}.npy",
                    dtypes=dtype,
                    shape=(tokens, *tail),
                    mmap_mode="r",
                )
        index._codec = codec
        index._trained_on = trained_on
        index._append_rows(np.cumsum(lengths) - lengths, lengths)
        if arrays:
            index._segments = [_Segment(0, codes, arrays)]
        return index


def _meta_count(meta: dict[str, Any], key: str, minimum: int, default: int | None = None) -> int:
    """``meta[key]``, an int >= ``minimum`` (``default`` when absent and given)."""
    value = meta.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an int >= {minimum}, got {value!r}")
    return value
