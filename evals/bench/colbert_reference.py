"""The ColBERT index's candidate search as it was before issue 21: the "before" of
``rag-retrievers bench colbert --compare-reference`` and the reference the tests check the fast
path against.

Same algorithm and settings as :meth:`MultiVectorIndex.search
<rag_retrievers.index.multivector.MultiVectorIndex.search>` with ``mode="candidates"``, written
the straightforward way: stage 1 sorts every probed (row, query token) pair (``np.lexsort``),
stage 2 gathers the centroid scores of every token of the ``4 * ndocs`` best rows, and the
``ndocs`` candidates are scored exactly on fully decoded tokens (bits unpacked, centroid added,
each vector normalised) in chunks of 65,536 tokens. It reads the index's stored arrays and
shares nothing with the fast path but :func:`~rag_retrievers.scoring.plaid.token_ranges`,
:func:`~rag_retrievers.scoring.plaid.inverted_lists` and :func:`~rag_retrievers.scoring.topk.
top_k`.
"""

from __future__ import annotations

import numpy as np

from rag_retrievers.index.multivector import MultiVectorIndex
from rag_retrievers.index.token_codecs import TokenCodec, _unpack
from rag_retrievers.scoring.kmeans import normalize_rows
from rag_retrievers.scoring.plaid import inverted_lists, token_ranges
from rag_retrievers.scoring.topk import top_k

#: tokens decoded and scored per step (the value before issue 21)
CHUNK_TOKENS = 65_536


def maxsim_of_blocks(similarities: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MaxSim per document from ``(query tokens, tokens)`` similarities of documents laid out
    back to back; an empty document scores 0."""
    out = np.zeros(len(lengths), dtype=np.float32)
    nonempty = lengths > 0
    if not nonempty.any() or not len(similarities):
        return out
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    out[nonempty] = np.maximum.reduceat(similarities, starts, axis=1).sum(axis=0)
    return out


def decode(codec: TokenCodec, arrays: dict[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
    """float32 vectors, decoded as the codec did before issue 21 (bits unpacked per call)."""
    if codec.compression == "fp16":
        return np.asarray(arrays["vectors"], dtype=np.float32)
    if codec.compression == "int8":
        scales = np.asarray(arrays["scales"], dtype=np.float32) / 127
        return np.asarray(arrays["vectors"], dtype=np.float32) * scales[:, None]
    if codec.centroids is None or codec.weights is None:
        raise ValueError("residual compression needs centroids and fitted buckets")
    buckets = _unpack(arrays["residuals"], codec.nbits, codec.dimension)
    return normalize_rows(codec.centroids[codes] + codec.weights[buckets])


class ReferenceSearch:
    """The pre-issue-21 candidate search over a built :class:`MultiVectorIndex` (read only)."""

    def __init__(self, index: MultiVectorIndex) -> None:
        if index.centroids is None:
            raise ValueError("the index has no centroids yet")
        self.index = index
        self.centroids = index.centroids
        codes = np.concatenate([s.codes for s in index._segments]).astype(np.int64)
        self.codes = codes
        self.lists = inverted_lists(
            codes, index._starts, index._lengths, index._live, len(self.centroids)
        )

    def _gather(self, tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        segments = self.index._segments
        stops = np.asarray([s.stop for s in segments])
        which = np.searchsorted(stops, tokens, side="right")
        codes = np.zeros(len(tokens), dtype=np.int64)
        arrays: dict[str, np.ndarray] = {}
        for i in np.unique(which).tolist():
            seg = segments[i]
            picked = which == i
            local = tokens[picked] - seg.start
            codes[picked] = seg.codes[local]
            for name, a in seg.arrays.items():
                if name not in arrays:
                    arrays[name] = np.zeros((len(tokens), *a.shape[1:]), dtype=a.dtype)
                arrays[name][picked] = a[local]
        return codes, arrays

    def exact(self, queries: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        """``(len(queries), len(rows))`` MaxSim on decoded tokens, chunk by chunk."""
        index = self.index
        out = np.zeros((len(queries), len(rows)), dtype=np.float32)
        lengths = index._lengths[rows]
        ends = np.cumsum(lengths)
        start = 0
        while start < len(rows):
            budget = ends[start] - lengths[start] + CHUNK_TOKENS
            stop = max(start + 1, int(np.searchsorted(ends, budget, side="right")))
            chunk = rows[start:stop]
            tokens = token_ranges(index._starts[chunk], index._lengths[chunk])
            if len(tokens):
                codes, arrays = self._gather(tokens)
                vectors = decode(index._codec, arrays, codes)
                for i, query in enumerate(queries):
                    sims = np.asarray(query, np.float32) @ vectors.T
                    out[i, start:stop] = maxsim_of_blocks(sims, index._lengths[chunk])
            start = stop
        return out

    def candidates(self, query: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Up to ``ndocs`` allowed rows, ascending, by the pre-issue-21 stages 1 and 2."""
        settings = self.index.settings
        indptr, list_rows = self.lists
        scores = np.asarray(query, np.float32) @ self.centroids.T
        nprobe = min(settings.nprobe, len(self.centroids))
        probes = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
        tokens = np.repeat(np.arange(len(query)), nprobe)
        cells = probes.ravel()
        sizes = indptr[cells + 1] - indptr[cells]
        rows = list_rows[token_ranges(indptr[cells], sizes)]
        values = np.repeat(scores[tokens, cells], sizes)
        token_of = np.repeat(tokens, sizes)
        keep = allowed[rows]
        rows, values, token_of = rows[keep], values[keep], token_of[keep]
        if not len(rows):
            return rows
        key = rows * len(query) + token_of
        order = np.lexsort((-values, key))
        key, values = key[order], values[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        row_of = key[first] // len(query)
        found, start = np.unique(row_of, return_index=True)
        found = _best(found, np.add.reduceat(values[first], start), 4 * settings.ndocs)
        if len(found) <= settings.ndocs:
            return found
        lengths = self.index._lengths[found]
        codes = self.codes[token_ranges(self.index._starts[found], lengths)]
        return _best(found, maxsim_of_blocks(scores[:, codes], lengths), settings.ndocs)

    def search(
        self, queries: list[np.ndarray], k: int, mask: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows and scores of the ``k`` best per query, best first, ties by row (candidates)."""
        index = self.index
        allowed = index._live if mask is None else index._live & mask[: index.n_rows]
        results = []
        for query in queries:
            rows = self.candidates(query, allowed)
            if len(rows) < min(k, int(allowed.sum())):
                rows = np.flatnonzero(allowed)
            scores = self.exact([query], rows)[0]
            positions, best = top_k(scores, k, candidates=np.ones(len(scores), dtype=bool))
            results.append((rows[positions], best))
        return results


def _best(rows: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return np.sort(rows[np.argpartition(-scores, n - 1)[:n]])
