"""How token vectors are stored: float16, int8, or centroid + quantised residual.

Every codec turns L2-normalised float32 vectors into a few plain arrays (saved as ``.npy`` and
memory-mapped on open) and back. Bytes per token at dimension ``d``: ``fp16`` 2d, ``int8``
d + 2 (a float16 scale per token), ``residual`` d * nbits / 8 (plus the centroid id every mode
stores for candidate generation).

``residual`` is ColBERTv2's compression (Santhanam et al., NAACL 2022): a vector is its nearest
centroid plus a residual whose every component is quantised to ``nbits`` bits; the bucket
boundaries are quantiles of the residual components, each bucket decodes to its median, and the
decoded vector is L2-normalised again.

Decoding residuals unpacks no bits at run time: a table built once per codec maps each byte of
packed codes to the ``8 / nbits`` float32 components it stands for, so decoding is one gather
(:meth:`TokenCodec.residual_vectors`). Scoring needs less than decoding:
:meth:`TokenCodec.scoring_terms` gives what a matrix product with the query needs, and a
residual token's score ``q . (c + r) / |c + r|`` is computed as ``(q . c + q . r) / |c + r|``
from the query's centroid scores, the residuals and the token's norm (which the index caches),
without materialising ``c + r``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from rag_retrievers.errors import CorruptCollectionError, InvalidInputError
from rag_retrievers.index.npy import load_npy
from rag_retrievers.scoring.kmeans import normalize_rows

Compression = Literal["fp16", "int8", "residual"]
COMPRESSIONS: tuple[str, ...] = ("fp16", "int8", "residual")
#: fewest tokens per default centroid: with fewer, a small collection's centroids sit on its own
#: tokens, the residuals they are fitted on are ~0, and a later document's residuals clip
MIN_TOKENS_PER_CENTROID = 16


def default_centroids(n_tokens: int) -> int:
    """Centroids for ``n_tokens`` vectors: the power of two nearest ``4 * sqrt(n)`` (PLAID uses
    16 * sqrt(n) on GPUs; a quarter keeps CPU k-means short at similar list lengths per query),
    and at most one per :data:`MIN_TOKENS_PER_CENTROID` tokens (binding below 4,096 tokens).

    >>> default_centroids(1_000_000), default_centroids(300), default_centroids(10)
    (4096, 18, 1)
    """
    if n_tokens < 2:
        return 1
    by_size = 2 ** round(np.log2(4 * np.sqrt(n_tokens)))
    return int(max(1, min(by_size, n_tokens // MIN_TOKENS_PER_CENTROID)))


def _pack(buckets: np.ndarray, nbits: int) -> np.ndarray:
    bits = (buckets[:, :, None] >> np.arange(nbits, dtype=np.uint8)) & 1
    return np.packbits(bits.reshape(len(buckets), -1), axis=1)


def _unpack(packed: np.ndarray, nbits: int, dim: int) -> np.ndarray:
    bits = np.unpackbits(np.asarray(packed), axis=1, count=dim * nbits).reshape(-1, dim, nbits)
    return (bits << np.arange(nbits, dtype=np.uint8)).sum(axis=2, dtype=np.uint8)


#: a byte's decoded components as one item of this many bytes (a copy of an integer or complex
#: item is a plain move of its bits); other sizes use a void item
_ITEM_TYPES: dict[int, np.dtype] = {
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
    16: np.dtype(np.complex128),
}


def byte_table(weights: np.ndarray, nbits: int) -> np.ndarray:
    """``(256,)`` items, each the float32 values ``weights[bucket]`` of the ``8 // nbits``
    components one packed byte holds (in :func:`_pack`'s order), viewed as one item so that
    ``table[packed].view(np.float32)`` decodes a whole row of packed bytes in one gather."""
    per_byte = 8 // nbits
    buckets = _unpack(np.arange(256, dtype=np.uint8)[:, None], nbits, per_byte)
    values = np.ascontiguousarray(np.asarray(weights, np.float32)[buckets])  # (256, per_byte)
    size = 4 * per_byte
    return values.view(_ITEM_TYPES.get(size, np.dtype((np.void, size)))).reshape(256)


@dataclass(frozen=True)
class ScoringTerms:
    """What scoring stored tokens against a query takes, without decoding them: a token's
    score is ``((q @ matrix.T) + (centroid score of its code if centroid_term)) * scale``
    (``scale`` None: 1)."""

    matrix: np.ndarray  # (n, dimension) float32
    scale: np.ndarray | None  # (n,) float32
    centroid_term: bool


@dataclass(frozen=True)
class TokenCodec:
    """Encode/decode token vectors with one compression; ``centroids`` for ``residual``."""

    compression: Compression
    dimension: int
    nbits: int = 2
    centroids: np.ndarray | None = None
    cutoffs: np.ndarray | None = None  # residual bucket boundaries, 2**nbits - 1
    weights: np.ndarray | None = None  # what each residual bucket decodes to, 2**nbits

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise InvalidInputError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}"
            )
        if self.nbits not in (1, 2, 4, 8):
            raise InvalidInputError(f"nbits must be 1, 2, 4 or 8, got {self.nbits!r}")

    @property
    def array_names(self) -> tuple[str, ...]:
        """The per-token arrays this codec stores (besides ``codes``)."""
        return {"fp16": ("vectors",), "int8": ("vectors", "scales"), "residual": ("residuals",)}[
            self.compression
        ]

    def token_layout(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """The dtype and per-token shape of each array :meth:`encode` returns (and a save
        writes), by name; ``codes`` excluded."""
        d = self.dimension
        layouts: dict[str, dict[str, tuple[np.dtype, tuple[int, ...]]]] = {
            "fp16": {"vectors": (np.dtype(np.float16), (d,))},
            "int8": {"vectors": (np.dtype(np.int8), (d,)), "scales": (np.dtype(np.float16), ())},
            "residual": {"residuals": (np.dtype(np.uint8), (-(-d * self.nbits // 8),))},
        }
        return layouts[self.compression]

    @classmethod
    def read(
        cls, folder: Path, prefix: str, compression: Compression, dimension: int, nbits: int
    ) -> TokenCodec:
        """The codec whose parameters (``{prefix}.centroids.npy``, ``.cutoffs.npy``,
        ``.weights.npy``, each optional) a save wrote to ``folder``. Each file's header is
        checked before it is read, and the values must be finite with the shapes the codec
        indexes by: ``(k, dimension)`` centroids, ``2**nbits - 1`` cutoffs and ``2**nbits``
        weights; a residual codec with centroids needs both bucket arrays. Anything else raises
        :class:`~rag_retrievers.errors.CorruptCollectionError`."""
        buckets = 2**nbits
        shapes = {"centroids": (None, dimension), "cutoffs": (buckets - 1,), "weights": (buckets,)}
        found: dict[str, np.ndarray] = {}
        for name, shape in shapes.items():
            path = folder / f"{prefix}.{name}.npy"
            if path.exists():
                found[name] = load_npy(path, dtypes=np.float32, shape=shape)
                if not np.isfinite(found[name]).all():
                    raise CorruptCollectionError(f"{path} holds values that are not finite")
        if "centroids" in found and not len(found["centroids"]):
            raise CorruptCollectionError(f"{folder / f'{prefix}.centroids.npy'} holds no rows")
        fitted = [name for name in ("cutoffs", "weights") if name in found]
        if compression == "residual" and "centroids" in found and len(fitted) < 2:
            raise CorruptCollectionError(
                f"{folder}: residual compression with centroids needs {prefix}.cutoffs.npy and "
                f"{prefix}.weights.npy; found {', '.join(fitted) or 'neither'}"
            )
        return cls(
            compression,
            dimension,
            nbits,
            found.get("centroids"),
            found.get("cutoffs"),
            found.get("weights"),
        )

    @cached_property
    def _table(self) -> np.ndarray:
        if self.weights is None:
            raise InvalidInputError("residual compression needs centroids and fitted buckets")
        return byte_table(self.weights, self.nbits)

    def residual_vectors(self, residuals: np.ndarray) -> np.ndarray:
        """float32 ``(n, dimension)`` residuals (``weights[bucket]`` of every component) from
        packed ``residuals``: one table gather, no bit unpacking."""
        packed = np.asarray(residuals, dtype=np.uint8)
        width = packed.shape[1] * (8 // self.nbits)
        # every byte is a valid index: "wrap" skips the bounds checks of plain indexing
        out = np.take(self._table, packed, mode="wrap").view(np.float32).reshape(-1, width)
        return out if out.shape[1] == self.dimension else out[:, : self.dimension]

    def scoring_terms(
        self, arrays: Mapping[str, np.ndarray], inverse_norms: np.ndarray | None = None
    ) -> ScoringTerms:
        """:class:`ScoringTerms` of tokens from this codec's arrays (rows already selected).
        ``residual`` needs ``inverse_norms``: ``1 / |c + r|`` of each token
        (:meth:`inverse_norms`), which the caller caches."""
        if self.compression == "fp16":
            return ScoringTerms(np.asarray(arrays["vectors"], dtype=np.float32), None, False)
        if self.compression == "int8":
            scales = np.asarray(arrays["scales"], dtype=np.float32) / 127
            return ScoringTerms(np.asarray(arrays["vectors"], dtype=np.float32), scales, False)
        if inverse_norms is None:
            raise InvalidInputError("residual scoring needs the tokens' inverse norms")
        return ScoringTerms(self.residual_vectors(arrays["residuals"]), inverse_norms, True)

    def inverse_norms(self, arrays: Mapping[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
        """``1 / max(|c + r|, 1e-12)`` per token, the factor :meth:`decode` normalises by
        (``residual`` only)."""
        if self.centroids is None:
            raise InvalidInputError("residual compression needs centroids and fitted buckets")
        full = self.centroids[codes] + self.residual_vectors(arrays["residuals"])
        return (1.0 / np.maximum(np.linalg.norm(full, axis=1), 1e-12)).astype(np.float32)

    def bytes_per_token(self) -> float:
        d = self.dimension
        return {"fp16": 2 * d, "int8": d + 2, "residual": -(-d * self.nbits // 8)}[self.compression]

    def fit_residuals(self, sample: np.ndarray, codes: np.ndarray) -> TokenCodec:
        """This codec with residual buckets fitted on ``sample`` (for ``residual`` only)."""
        if self.compression != "residual" or self.centroids is None:
            return self
        residuals = (np.asarray(sample, np.float32) - self.centroids[codes]).ravel()
        n = 2**self.nbits
        cutoffs = np.quantile(residuals, np.arange(1, n) / n).astype(np.float32)
        weights = np.quantile(residuals, (np.arange(n) + 0.5) / n).astype(np.float32)
        return TokenCodec(
            self.compression, self.dimension, self.nbits, self.centroids, cutoffs, weights
        )

    def encode(self, vectors: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.compression == "fp16":
            return {"vectors": vectors.astype(np.float16)}
        if self.compression == "int8":
            scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12).astype(np.float16)
            q = np.rint(vectors / scale.astype(np.float32)[:, None] * 127)
            return {"vectors": np.clip(q, -127, 127).astype(np.int8), "scales": scale}
        if self.centroids is None or self.cutoffs is None:
            raise InvalidInputError("residual compression needs centroids and fitted buckets")
        buckets = np.searchsorted(self.cutoffs, vectors - self.centroids[codes]).astype(np.uint8)
        return {"residuals": _pack(buckets, self.nbits)}

    def decode(self, arrays: Mapping[str, np.ndarray], codes: np.ndarray) -> np.ndarray:
        """float32 ``(n, dimension)`` vectors from this codec's arrays (rows already selected)."""
        if self.compression == "fp16":
            return np.asarray(arrays["vectors"], dtype=np.float32)
        if self.compression == "int8":
            scales = np.asarray(arrays["scales"], dtype=np.float32) / 127
            return np.asarray(arrays["vectors"], dtype=np.float32) * scales[:, None]
        if self.centroids is None or self.weights is None:
            raise InvalidInputError("residual compression needs centroids and fitted buckets")
        return normalize_rows(self.centroids[codes] + self.residual_vectors(arrays["residuals"]))
