"""MUVERA fixed-dimensional encodings: one vector per multi-vector set, for single-vector engines.

Dhulipala, Hadian, Jayaram, Lee & Mirrokni, "MUVERA: Multi-Vector Retrieval via Fixed
Dimensional Encodings" (NeurIPS 2024). The inner product of a query's encoding and a
document's approximates the Chamfer (MaxSim) similarity of their token sets, so an engine that
only knows single vectors (Milvus ``FLOAT_VECTOR`` with inner product) finds candidates that
exact MaxSim then reranks.

Per repetition (``repetitions`` of them, independent randomness): SimHash with ``k_sim``
Gaussian hyperplanes sends each token to one of ``2**k_sim`` buckets; an optional random
projection (``d_proj`` dimensions, +-1 entries, an AMS sketch) shrinks each token. A document
writes into each bucket the *average* of its tokens there, and an empty bucket takes the token
nearest to it (fewest differing SimHash bits; ``fill_empty``); a query writes the *sum* of its
tokens there (divided by ``repetitions``, so scores do not grow with them; a bucket's average
stands in for MaxSim's maximum, so they run below MaxSim). The buckets of all repetitions,
concatenated, are the encoding: ``repetitions * 2**k_sim * d_proj`` dimensions
(``d_proj=None``: the token dimension).

Everything is a pure function of the settings (seeded): a collection that records its
:class:`FDESettings` encodes queries identically after it is reopened.

>>> import numpy as np
>>> settings = FDESettings(k_sim=2, repetitions=3, d_proj=4, seed=0)
>>> projections = fde_projections(settings, dim=8)
>>> rng = np.random.default_rng(0)
>>> doc, query = rng.normal(size=(5, 8)), rng.normal(size=(2, 8))
>>> document_fde(doc, projections).shape
(48,)
>>> bool(np.allclose(document_fde(doc, projections), document_fde(doc, projections)))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rag_retrievers.errors import InvalidInputError

#: the largest encoding we build: Milvus refuses FLOAT_VECTOR fields above 32,768 dimensions
MAX_FDE_DIMENSION = 32_768


def _positive_int(name: str, value: object, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int >= 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be at most {maximum}, got {value!r}")
    return value


@dataclass(frozen=True)
class FDESettings:
    """How token sets become fixed-dimensional encodings; JSON values, recorded with a
    collection.

    - ``k_sim``: SimHash bits per repetition (``2**k_sim`` buckets; at most 10).
    - ``repetitions``: independent partitions, concatenated.
    - ``d_proj``: dimensions of each token's random projection (``None``: no projection).
    - ``seed``: the randomness of the hyperplanes and projections.
    - ``fill_empty``: a document's empty bucket takes its nearest token (the paper's default).
    """

    k_sim: int = 4
    repetitions: int = 16
    d_proj: int | None = 16
    seed: int = 0
    fill_empty: bool = True

    def __post_init__(self) -> None:
        _positive_int("k_sim", self.k_sim, 10)
        _positive_int("repetitions", self.repetitions)
        if self.d_proj is not None:
            _positive_int("d_proj", self.d_proj)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.fill_empty, bool):
            raise InvalidInputError(f"fill_empty must be a bool, got {self.fill_empty!r}")

    def dimension(self, token_dim: int) -> int:
        """The encoding's length for tokens of ``token_dim`` dimensions."""
        return self.repetitions * 2**self.k_sim * (self.d_proj or token_dim)


@dataclass(frozen=True)
class FDEProjections:
    """The random draws of one :class:`FDESettings` for one token dimension (see
    :func:`fde_projections`)."""

    settings: FDESettings
    dim: int
    #: ``(dim, repetitions * k_sim)`` SimHash hyperplanes
    hyperplanes: np.ndarray
    #: ``(repetitions, dim, d_proj)`` +-1/sqrt(d_proj) projections, or ``None``
    projections: np.ndarray | None

    @property
    def dimension(self) -> int:
        return self.settings.dimension(self.dim)


def fde_projections(settings: FDESettings, dim: int) -> FDEProjections:
    """The hyperplanes and projections ``settings`` draws for ``dim``-dimensional tokens."""
    _positive_int("dim", dim)
    if settings.dimension(dim) > MAX_FDE_DIMENSION:
        raise InvalidInputError(
            f"the encoding would have {settings.dimension(dim)} dimensions (repetitions "
            f"{settings.repetitions} x 2**k_sim {2**settings.k_sim} x d_proj "
            f"{settings.d_proj or dim}); at most {MAX_FDE_DIMENSION}: lower one of them"
        )
    rng = np.random.default_rng(settings.seed)
    hyperplanes = rng.standard_normal((dim, settings.repetitions * settings.k_sim))
    projections = None
    if settings.d_proj is not None:
        signs = rng.integers(0, 2, size=(settings.repetitions, dim, settings.d_proj))
        projections = (2.0 * signs - 1.0) / np.sqrt(settings.d_proj)
    return FDEProjections(settings, dim, hyperplanes, projections)


#: documents encoded together: bounds the (tokens x repetitions x buckets) arrays of a batch
_DOCUMENTS_PER_BATCH = 64


def _encode(sets: list[np.ndarray], p: FDEProjections, *, document: bool) -> np.ndarray:
    """Encodings of token sets, one row each (documents: means and filled buckets; queries:
    sums over the repetitions)."""
    s = p.settings
    n_sets, reps, n_buckets = len(sets), s.repetitions, 2**s.k_sim
    width = s.d_proj or p.dim
    out = np.zeros((n_sets * reps * n_buckets, width))
    arrays = [np.asarray(t, dtype=np.float64) for t in sets]
    for tokens in arrays:
        if tokens.ndim != 2 or (len(tokens) and tokens.shape[1] != p.dim):
            raise InvalidInputError(
                f"tokens must be a (n, {p.dim}) array, got shape {tuple(tokens.shape)}"
            )
    lengths = np.array([len(t) for t in arrays], dtype=np.int64)
    if not lengths.sum():
        return out.reshape(n_sets, -1).astype(np.float32)
    tokens = np.concatenate([t for t in arrays if len(t)])
    n = len(tokens)
    bits = (tokens @ p.hyperplanes > 0).reshape(n, reps, s.k_sim)
    codes = (bits * (1 << np.arange(s.k_sim))).sum(axis=2)  # (n, reps)
    # codes in float64 (a sign must not depend on the batch), projections in float32 (speed)
    projected: np.ndarray
    if p.projections is None:
        projected = np.repeat(tokens, reps, axis=0)  # row t * reps + r: token t, repetition r
    else:
        flat = p.projections.transpose(1, 0, 2).reshape(p.dim, reps * width)
        projected = (tokens.astype(np.float32) @ flat.astype(np.float32)).reshape(-1, width)
    owner = np.repeat(np.arange(n_sets), lengths)
    slots = ((owner[:, None] * reps + np.arange(reps)) * n_buckets + codes).ravel()
    scatter = sp.csr_matrix(
        (np.ones(n * reps), (slots, np.arange(n * reps))), shape=(len(out), n * reps)
    )
    out += scatter @ projected
    if not document:
        return (out / reps).reshape(n_sets, -1).astype(np.float32)
    counts = np.bincount(slots, minlength=len(out))
    out /= np.maximum(counts, 1)[:, None]
    if s.fill_empty:
        _fill_empty(out, counts == 0, codes, projected, lengths, n_buckets)
    return out.reshape(n_sets, -1).astype(np.float32)


def _fill_empty(
    out: np.ndarray,
    empty: np.ndarray,
    codes: np.ndarray,
    projected: np.ndarray,
    lengths: np.ndarray,
    n_buckets: int,
) -> None:
    """Give each empty bucket of a non-empty set the set's token whose code differs from the
    bucket's in the fewest bits (the first such token), in place."""
    n, reps = codes.shape
    nonempty = np.flatnonzero(lengths)
    empty = empty.reshape(len(lengths), reps, n_buckets)[nonempty]
    if not empty.any():
        return
    buckets = np.arange(n_buckets)
    ones = np.array([bin(v).count("1") for v in range(n_buckets)], dtype=np.int64)
    differing = ones[codes[:, :, None] ^ buckets]  # bits differing: (n, reps, buckets)
    # smallest distance first, then the earliest token: one min per set over its tokens
    key = differing * n + np.arange(n)[:, None, None]
    starts = (np.cumsum(lengths) - lengths)[nonempty]
    nearest = np.minimum.reduceat(key, starts, axis=0) % n  # (sets, reps, buckets)
    source = nearest * reps + np.arange(reps)[None, :, None]
    target = out.reshape(len(lengths), reps, n_buckets, -1)
    filled = target[nonempty]
    filled[empty] = projected[source[empty]]
    target[nonempty] = filled


def _batched(sets: list[np.ndarray], p: FDEProjections, *, document: bool) -> np.ndarray:
    out = np.zeros((len(sets), p.dimension), dtype=np.float32)
    for start in range(0, len(sets), _DOCUMENTS_PER_BATCH):
        part = sets[start : start + _DOCUMENTS_PER_BATCH]
        out[start : start + len(part)] = _encode(part, p, document=document)
    return out


def query_fde(tokens: np.ndarray, projections: FDEProjections) -> np.ndarray:
    """A query's encoding: per repetition and bucket the sum of its tokens there, divided by
    the number of repetitions; float32. No tokens: zeros."""
    return _encode([tokens], projections, document=False)[0]


def document_fde(tokens: np.ndarray, projections: FDEProjections) -> np.ndarray:
    """A document's encoding: per repetition and bucket the average of its tokens there; with
    ``fill_empty`` an empty bucket takes the token whose SimHash code differs from the bucket's
    in the fewest bits (the first such token); float32. No tokens: zeros."""
    return _encode([tokens], projections, document=True)[0]


def document_fdes(documents: list[np.ndarray], projections: FDEProjections) -> np.ndarray:
    """:func:`document_fde` of each document, one row each ``(len(documents), dimension)``."""
    return _batched(list(documents), projections, document=True)


def query_fdes(queries: list[np.ndarray], projections: FDEProjections) -> np.ndarray:
    """:func:`query_fde` of each query, one row each ``(len(queries), dimension)``."""
    return _batched(list(queries), projections, document=False)
