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
(PLAID's centroid interaction with pruning: :mod:`rag_retrievers.scoring.plaid`) and scores the
``ndocs`` best exactly by MaxSim over their decoded tokens.

``mode="exhaustive"`` scores every (matching) document exactly: the reference, and what ``auto``
does for collections of at most ``exhaustive_max_tokens`` tokens or filters that match few.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
from rag_retrievers.scoring.maxsim import maxsim_batch, pool_tokens
from rag_retrievers.scoring.plaid import centroid_candidates, inverted_lists, token_ranges
from rag_retrievers.scoring.topk import top_k

SearchMode = Literal["auto", "candidates", "exhaustive"]
SEARCH_MODES: tuple[str, ...] = ("auto", "candidates", "exhaustive")
#: tokens decoded and scored per step of an exhaustive search: bounds its memory
_SCORE_CHUNK_TOKENS = 65_536
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
    """Tokens ``[start, start + n)`` of the index: codes and the codec's arrays."""

    start: int
    codes: np.ndarray
    arrays: dict[str, np.ndarray]

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
        self._lists: tuple[np.ndarray, np.ndarray] | None = None  # centroid -> rows (CSR)

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
        """Codes and codec arrays of the given (ascending) token indices."""
        if len(self._segments) == 1:
            seg = self._segments[0]
            return seg.codes[tokens], {n: a[tokens] for n, a in seg.arrays.items()}
        stops = np.asarray([s.stop for s in self._segments])
        which = np.searchsorted(stops, tokens, side="right")
        codes: list[np.ndarray] = []
        arrays: dict[str, list[np.ndarray]] = {n: [] for n in self._codec.array_names}
        for i in np.unique(which).tolist():
            seg = self._segments[i]
            local = tokens[which == i] - seg.start
            codes.append(seg.codes[local])
            for name, a in seg.arrays.items():
                arrays[name].append(a[local])
        return np.concatenate(codes), {n: np.concatenate(v) for n, v in arrays.items()}

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
        results = []
        for query in queries:
            rows = self.candidates(query, allowed)
            if len(rows) < min(k, int(allowed.sum())):  # a selective filter: score all it allows
                rows = np.flatnonzero(allowed)
            results.append(self._top(rows, self._exact([query], rows)[0], k))
        return results

    @staticmethod
    def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        positions, best = top_k(scores, k, candidates=np.ones(len(scores), dtype=bool))
        return rows[positions], best

    def _exact(self, queries: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        """``(len(queries), len(rows))`` exact MaxSim scores, decoding tokens chunk by chunk."""
        out = np.zeros((len(queries), len(rows)), dtype=np.float32)
        lengths = self._lengths[rows]
        ends = np.cumsum(lengths)
        start = 0
        while start < len(rows):
            budget = ends[start] - lengths[start] + _SCORE_CHUNK_TOKENS
            stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
            chunk = rows[start:stop]
            tokens = self._decode(token_ranges(self._starts[chunk], self._lengths[chunk]))
            out[:, start:stop] = maxsim_batch(queries, tokens, self._lengths[chunk])
            start = stop
        return out

    def candidates(self, query: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Up to ``ndocs`` allowed rows with the best approximate scores, ascending
        (:func:`~rag_retrievers.scoring.plaid.centroid_candidates` over this index's centroids)."""
        return centroid_candidates(
            query,
            self._require_centroids(),
            self._inverted_lists(),
            allowed,
            nprobe=self.settings.nprobe,
            ndocs=self.settings.ndocs,
            row_codes=self._row_codes,
        )

    def _row_codes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The centroid ids of ``rows``' tokens back to back, and their token counts."""
        lengths = self._lengths[rows]
        return self._gather_codes(token_ranges(self._starts[rows], lengths)), lengths

    def centroid_idf(self, vectors: np.ndarray) -> np.ndarray:
        """``log((N + 1) / (df + 1))`` for each vector, where ``df`` counts the live rows holding
        a token of the vector's nearest centroid and ``N`` the live rows: how rare that region of
        the token space is in the collection (ColBERT-PRF's idf, by centroid, not by word)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(vectors):
            return np.empty(0, dtype=np.float32)
        indptr, _ = self._inverted_lists()
        cells = assign_centroids(vectors, self._require_centroids())
        df = (indptr[cells + 1] - indptr[cells]).astype(np.float64)
        return np.log((self.n_live + 1) / (df + 1)).astype(np.float32)

    def _gather_codes(self, tokens: np.ndarray) -> np.ndarray:
        if len(self._segments) == 1:
            return self._segments[0].codes[tokens].astype(np.int64)
        stops = np.asarray([s.stop for s in self._segments])
        which = np.searchsorted(stops, tokens, side="right")
        out = np.empty(len(tokens), dtype=np.int64)
        for i in np.unique(which).tolist():
            seg = self._segments[i]
            picked = which == i
            out[picked] = seg.codes[tokens[picked] - seg.start]
        return out

    def _inverted_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """centroid -> rows holding a token of it (CSR: indptr, rows); built after writes."""
        if self._lists is None:
            k = len(self._require_centroids())
            codes = np.concatenate([s.codes for s in self._segments]).astype(np.int64)
            self._lists = inverted_lists(codes, self._starts, self._lengths, self._live, k)
        return self._lists

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
