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


def _buckets(tokens: np.ndarray, p: FDEProjections) -> tuple[np.ndarray, np.ndarray]:
    """Each token's bucket per repetition ``(n, repetitions)`` and its projected vector per
    repetition ``(repetitions, n, width)``."""
    s = p.settings
    if tokens.ndim != 2 or tokens.shape[1] != p.dim:
        raise InvalidInputError(
            f"tokens must be a (n, {p.dim}) array, got shape {tuple(tokens.shape)}"
        )
    bits = (tokens @ p.hyperplanes > 0).reshape(len(tokens), s.repetitions, s.k_sim)
    codes = (bits * (1 << np.arange(s.k_sim))).sum(axis=2)
    if p.projections is None:
        projected = np.broadcast_to(tokens, (s.repetitions, *tokens.shape))
    else:
        projected = np.einsum("nd,rdp->rnp", tokens, p.projections)
    return codes, projected


def _bucket_sums(codes: np.ndarray, projected: np.ndarray, n_buckets: int) -> np.ndarray:
    """``(repetitions, n_buckets, width)`` sums of the projected tokens in each bucket."""
    repetitions, _, width = projected.shape
    slots = (codes + n_buckets * np.arange(repetitions)).T.ravel()  # repetition-major
    sums = np.zeros((repetitions * n_buckets, width))
    np.add.at(sums, slots, projected.reshape(-1, width))
    return sums.reshape(repetitions, n_buckets, width)


def query_fde(tokens: np.ndarray, projections: FDEProjections) -> np.ndarray:
    """A query's encoding: per repetition and bucket the sum of its tokens there, divided by
    the number of repetitions; float32."""
    s = projections.settings
    if not len(tokens):
        return np.zeros(projections.dimension, dtype=np.float32)
    tokens = np.asarray(tokens, dtype=np.float64)
    codes, projected = _buckets(tokens, projections)
    sums = _bucket_sums(codes, projected, 2**s.k_sim) / s.repetitions
    return sums.ravel().astype(np.float32)


def document_fde(tokens: np.ndarray, projections: FDEProjections) -> np.ndarray:
    """A document's encoding: per repetition and bucket the average of its tokens there; with
    ``fill_empty`` an empty bucket takes the token whose SimHash code differs from the bucket's
    in the fewest bits (the first such token); float32. No tokens: zeros."""
    s = projections.settings
    if not len(tokens):
        return np.zeros(projections.dimension, dtype=np.float32)
    tokens = np.asarray(tokens, dtype=np.float64)
    n_buckets = 2**s.k_sim
    codes, projected = _buckets(tokens, projections)
    sums = _bucket_sums(codes, projected, n_buckets)
    counts = np.zeros((s.repetitions, n_buckets))
    np.add.at(counts, (np.broadcast_to(np.arange(s.repetitions), codes.shape), codes), 1.0)
    out = sums / np.maximum(counts, 1.0)[:, :, None]
    if s.fill_empty:
        empty_rep, empty_bucket = np.nonzero(counts == 0)
        if len(empty_rep):
            # differing bits between each empty bucket and each token's code in its repetition
            differ = empty_bucket[:, None] ^ codes[:, empty_rep].T  # (empty, n)
            distance = _popcount(differ, s.k_sim)
            nearest = distance.argmin(axis=1)
            out[empty_rep, empty_bucket] = projected[empty_rep, nearest]
    return out.ravel().astype(np.float32)


def _popcount(values: np.ndarray, bits: int) -> np.ndarray:
    return sum(((values >> b) & 1 for b in range(bits)), np.zeros_like(values))


def document_fdes(documents: list[np.ndarray], projections: FDEProjections) -> np.ndarray:
    """:func:`document_fde` of each document, one row each ``(len(documents), dimension)``."""
    out = np.zeros((len(documents), projections.dimension), dtype=np.float32)
    for i, tokens in enumerate(documents):
        out[i] = document_fde(tokens, projections)
    return out


def query_fdes(queries: list[np.ndarray], projections: FDEProjections) -> np.ndarray:
    """:func:`query_fde` of each query, one row each ``(len(queries), dimension)``."""
    out = np.zeros((len(queries), projections.dimension), dtype=np.float32)
    for i, tokens in enumerate(queries):
        out[i] = query_fde(tokens, projections)
    return out
