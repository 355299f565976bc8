"""Hybrid retrieval: run several retrievers concurrently and fuse their rankings.

>>> from rag_retrievers import BM25, Document
>>> hybrid = Hybrid([BM25(), BM25(variant="okapi", k1=1.2, b=0.75)], fusion="rrf")
>>> hybrid.add([Document(id="a", text="sparse retrieval with BM25"),
...             Document(id="b", text="dense retrieval with embeddings"),
...             Document(id="c", text="late interaction over token embeddings")])
>>> hit = hybrid.search("bm25 ranking", k=1)[0]
>>> hit.id, sorted(hit.members)
('a', ['bm25-1', 'bm25-2'])
>>> hit.members["bm25-1"].rank
1

Each hit is a :class:`FusedHit`: a :class:`~rag_retrievers.records.Hit` (``source="hybrid"``)
that also carries, per member that found the document, its rank and score there
(``members``), and the members that failed on this query (``failed``). ``Hit`` itself is
unchanged: code that reads hits keeps working, and ``model_dump()`` includes the extra fields.
How members are specified, run concurrently under ``timeout`` and reported when they fail
(:class:`MemberError`) is in :mod:`rag_retrievers.adapters.members`; how their files are laid
out in the Hybrid's folder, in :mod:`rag_retrievers.adapters.member_files`.

Fusion inside Milvus: when every member keeps its vectors in one Milvus collection (``uri=`` and
the same ``collection``, one field each) and the fusion is unweighted RRF, one Milvus
``hybrid_search`` with its RRF ranker replaces the member searches and the fusion here (same
``depth`` per member, same ``k_rrf``). Its hits carry no per-member ranks (``members`` is empty:
Milvus does not return them), and a member's tied scores are ranked in Milvus's order, not by
row as here, so results can differ from fusion here where members have ties. Otherwise, or for a
filter Milvus cannot state exactly, the members are searched and fused here.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, Self

from rag_retrievers.adapters.member_files import members_manifest, read_member, write_members
from rag_retrievers.adapters.members import (
    MemberError,
    MemberFailureWarning,
    MemberTimeoutError,
    build_retriever,
    member_search,
    retriever_spec,
    run_concurrently,
)

from rag_retrievers.base import ComparedByConfig, Retriever
from rag_retrievers.errors import CorruptCollectionError, InvalidInputError, is_finite_number
from rag_retrievers.filters import CompiledFilter
from rag_retrievers.records import Document, FusedHit, Hit, MemberRank
from rag_retrievers.registry import register_retriever
from rag_retrievers.scoring import fusion as fusions

# the errors a Hybrid raises are part of its API (they live in adapters.members, with the
# member specs and the concurrent runner)
__all__ = [
    "Hybrid",
    "MemberError",
    "MemberFailureWarning",
    "MemberSearch",
    "MemberTimeoutError",
    "OnError",
]

OnError = Literal["raise", "skip"]
MemberSearch = Callable[[], list[list[Hit]]]


def _unique_names(retrievers: Sequence[Retriever]) -> list[str]:
    counts = Counter(r.name for r in retrievers)
    seen: Counter[str] = Counter()
    names = []
    for r in retrievers:
        seen[r.name] += 1
        names.append(f"{r.name}-{seen[r.name]}" if counts[r.name] > 1 else r.name)
    return names


@register_retriever("hybrid")
class Hybrid(ComparedByConfig, Retriever):
    """Several retrievers searched concurrently, their rankings fused (see ``fusion.py``).

    - ``retrievers``: the members (Retrievers, registered names or ``{"retriever", "config"}``
      specs), or a mapping ``name -> member`` to name them. Unnamed members are named by their
      registered name, numbered (``bm25-1``, ``bm25-2``) when it repeats.
    - ``fusion``: a name in :data:`rag_retrievers.scoring.fusion.FUSIONS` (``rrf``, ``combsum``,
      ``combmnz``, ``convex``); ``k_rrf`` is RRF's constant, ``normalization`` the score
      normalisation of the score fusions (a name in ``NORMALIZATIONS``).
    - ``weights``: one weight >= 0 per member, in member order (for ``convex``, summing to 1);
      a weight of 0 leaves that member out of the fusion.
    - ``depth``: hits fetched from each member per query (at least ``k``).
    - ``on_error``: a member that raises or times out either fails the search (``"raise"``,
      :class:`MemberError` naming the member) or is left out (``"skip"``): the others are fused,
      each hit lists it in ``failed`` and a :class:`MemberFailureWarning` is issued. Errors in the
      caller's input (:class:`~rag_retrievers.errors.InvalidInputError`) always propagate, and
      if every member fails the search fails.
    - ``timeout``: seconds to wait for each member's answer to one ``search_batch`` call.

    ``add``/``delete`` fan out to every member (concurrently); ``len`` is the largest member's
    length (members hold the same documents unless one was changed behind the Hybrid's back).
    Filters go to every member. ``save`` stores each member's own data files, under a prefix, in
    the Hybrid's generation folder, so one atomic save covers all members.
    """

    config_keys = frozenset(
        ("retrievers names fusion weights depth k_rrf normalization on_error timeout").split()
    )

    def __init__(
        self,
        retrievers: Sequence[Retriever | Mapping[str, Any] | str] | Mapping[str, Retriever],
        *,
        fusion: str = "rrf",
        weights: Sequence[float] | None = None,
        depth: int = 100,
        k_rrf: float = 60,
        normalization: str = "min-max",
        on_error: OnError = "raise",
        timeout: float | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(retrievers, Mapping):
            if names is not None:
                raise InvalidInputError("give member names either as a mapping or as names=")
            names = list(retrievers)
            retrievers = list(retrievers.values())
        if isinstance(retrievers, str | Mapping) or not isinstance(retrievers, Sequence):
            raise InvalidInputError(
                f"retrievers must be a non-empty list of retrievers, got {retrievers!r}"
            )
        members = [build_retriever(r, f"retrievers[{i}]") for i, r in enumerate(retrievers)]
        if not members:
            raise InvalidInputError("retrievers must hold at least one retriever")
        if len({id(m) for m in members}) != len(members):
            raise InvalidInputError("retrievers holds the same retriever object twice")
        if names is None:
            names = _unique_names(members)
        names = list(names)
        if len(names) != len(members) or not all(isinstance(n, str) and n for n in names):
            raise InvalidInputError(f"names must be one non-empty str per member, got {names!r}")
        if len(set(names)) != len(names):
            raise InvalidInputError(f"member names must be unique, got {names!r}")
        self.retrievers: tuple[Retriever, ...] = tuple(members)
        self.names: tuple[str, ...] = tuple(names)

        fusions.fusion(fusion)  # raises, listing the valid names
        self.fusion = fusion
        fusions.normalization(normalization)
        self.normalization = normalization
        if not (is_finite_number(k_rrf) and k_rrf >= 0):
            raise InvalidInputError(f"k_rrf must be a finite number >= 0, got {k_rrf!r}")
        self.k_rrf = k_rrf
        if weights is not None:
            if isinstance(weights, str | Mapping) or not isinstance(weights, Sequence):
                raise InvalidInputError(
                    f"weights must be a list with one number per member, got {weights!r}"
                )
            weights = list(weights)
            if len(weights) != len(members):
                raise InvalidInputError(
                    f"weights must have one number per member ({len(members)}), got {weights!r}"
                )
            if not all(is_finite_number(w) and w >= 0 for w in weights):
                raise InvalidInputError(f"weights must be finite numbers >= 0, got {weights!r}")
            if not any(weights):
                raise InvalidInputError("at least one weight must be > 0")
            if fusion == "convex" and abs(math.fsum(weights) - 1) > 1e-6:
                raise InvalidInputError(f"convex combination weights must sum to 1: {weights!r}")
        self.weights: list[float] | None = weights
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise InvalidInputError(f"depth must be an int >= 1, got {depth!r}")
        self.depth = depth
        if on_error not in ("raise", "skip"):
            raise InvalidInputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error: OnError = on_error
        if timeout is not None and not (is_finite_number(timeout) and timeout > 0):
            raise InvalidInputError(f"timeout must be None or a number > 0, got {timeout!r}")
        self.timeout = timeout

    # -- value semantics -----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "retrievers": [retriever_spec(r) for r in self.retrievers],
            "names": list(self.names),
            "fusion": self.fusion,
            "weights": self.weights,
            "depth": self.depth,
            "k_rrf": self.k_rrf,
            "normalization": self.normalization,
            "on_error": self.on_error,
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        members = ", ".join(repr(r) for r in self.retrievers)
        config = self._changed_config()
        config.pop("retrievers", None)
        if list(self.names) == _unique_names(self.retrievers):
            config.pop("names", None)
        options = "".join(f", {key}={value!r}" for key, value in config.items())
        return f"{type(self).__name__}([{members}]{options})"

    def _fusion_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"k": self.k_rrf, "normalization": self.normalization}
        accepted = inspect.signature(fusions.fusion(self.fusion)).parameters
        return {key: value for key, value in params.items() if key in accepted}

    # -- the adapter's methods -----------------------------------------------------------------

    def __len__(self) -> int:
        return max(len(r) for r in self.retrievers)

    def _check_documents(self, documents: list[Document]) -> None:
        for retriever in self.retrievers:
            retriever._check_documents(documents)

    def _fan_out(self, what: str, task: Callable[[Retriever], Any]) -> dict[str, Any]:
        tasks = {
            name: (lambda r=r: task(r)) for name, r in zip(self.names, self.retrievers, strict=True)
        }
        results, failures = run_concurrently(tasks, None)
        if failures:
            name, exc = next(iter(failures.items()))
            done = ", ".join(sorted(results)) or "none"
            raise MemberError(
                name,
                f"{what} failed in member {name!r}: {exc!r}; members that completed it: {done}. "
                "The members may now differ: repeat the operation.",
            ) from exc
        return results

    def _add(self, documents: list[Document]) -> None:
        self._fan_out("add", lambda r: r.add(documents, show_progress=False))

    def _delete(self, ids: list[str]) -> int:
        return max(self._fan_out("delete", lambda r: r.delete(ids)).values())

    def _metadata_fields(self) -> set[str] | None:
        fields: set[str] = set()
        for retriever in self.retrievers:
            member_fields = retriever._metadata_fields()
            if member_fields is None:
                return None
            fields |= member_fields
        return fields

    def _search_batch(
        self, queries: list[str], k: int, filter: CompiledFilter | None
    ) -> list[list[Hit]]:
        return self.fused_search(queries, k, filter)

    def fused_search(
        self,
        queries: list[str],
        k: int,
        filter: CompiledFilter | None,
        replace: Mapping[str, MemberSearch] | None = None,
    ) -> list[list[Hit]]:
        """Search every member (``replace`` swaps in other searches for named members, as
        :class:`~rag_retrievers.adapters.prf.PRF` does for the second pass) and fuse."""
        fetch = max(self.depth, k)
        if replace is None and self._fusion_in_milvus():
            from rag_retrievers.engines.milvus_search import milvus_fusion

            fused = milvus_fusion(self.retrievers, queries, k, fetch, self.k_rrf, filter)
            if fused is not None:
                return [
                    [
                        FusedHit(id=doc.id, score=score, rank=rank, document=doc, source=self.name)
                        for rank, (doc, score) in enumerate(hits, 1)
                    ]
                    for hits in fused
                ]
        tasks: dict[str, MemberSearch] = {}
        weights = self.weights or [1.0] * len(self.retrievers)
        for name, retriever, weight in zip(self.names, self.retrievers, weights, strict=True):
            if weight == 0:
                continue  # a member with weight 0 takes no part: no need to ask it
            if replace is not None and name in replace:
                tasks[name] = replace[name]
            else:
                tasks[name] = partial(member_search, retriever, queries, fetch, filter)
        results, failures = run_concurrently(tasks, self.timeout)
        for exc in failures.values():
            if isinstance(exc, InvalidInputError):
                raise exc
        if failures and (self.on_error == "raise" or not results):
            name, exc = next(iter(failures.items()))
            if isinstance(exc, MemberError):
                raise exc
            every = " (every member failed)" if not results else ""
            raise MemberError(name, f"member {name!r} failed{every}: {exc!r}") from exc
        if failures:
            warnings.warn(
                "Hybrid fused without failed members: "
                + "; ".join(f"{name}: {exc!r}" for name, exc in failures.items()),
                MemberFailureWarning,
                stacklevel=4,
            )
        return [
            self._fuse_one({name: hits[i] for name, hits in results.items()}, k, tuple(failures))
            for i in range(len(queries))
        ]

    def _fusion_in_milvus(self) -> bool:
        """Unweighted RRF over members that all keep their vectors in Milvus: Milvus's
        ``hybrid_search`` can fuse if they share one collection (checked by ``milvus_fusion``)."""
        equal = self.weights is None or len(set(self.weights)) == 1
        members_in_milvus = all(getattr(r, "milvus", None) is not None for r in self.retrievers)
        return self.fusion == "rrf" and equal and members_in_milvus

    def _fuse_one(
        self, by_member: dict[str, list[Hit]], k: int, failed: tuple[str, ...]
    ) -> list[Hit]:
        rankings = {name: [(h.id, h.score) for h in hits] for name, hits in by_member.items()}
        weights = None
        if self.weights is not None:
            given = dict(zip(self.names, self.weights, strict=True))
            weights = {name: given[name] for name in rankings}
        if self.fusion == "convex" and len(rankings) < len(self.names):
            # members skipped after a failure: spread the convex weights over the others again
            base = weights or dict.fromkeys(rankings, 1.0)
            total = math.fsum(base.values())
            weights = {name: w / total for name, w in base.items()}
        fused = fusions.fuse(rankings, self.fusion, weights=weights, **self._fusion_params())[:k]
        found: dict[str, dict[str, MemberRank]] = {}
        documents: dict[str, Document | None] = {}
        for name, hits in by_member.items():
            for hit in hits:
                found.setdefault(hit.id, {})[name] = MemberRank(rank=hit.rank, score=hit.score)
                if documents.get(hit.id) is None:
                    documents[hit.id] = hit.document
        return [
            FusedHit(
                id=doc_id,
                score=score,
                rank=rank,
                document=documents[doc_id],
                source=self.name,
                members=found[doc_id],
                failed=failed,
            )
            for rank, (doc_id, score) in enumerate(fused, 1)
        ]

    # -- persistence ---------------------------------------------------------------------------

    def _write_data(self, folder: Path) -> None:
        self._snapshot()(folder)

    def _snapshot(self) -> Callable[[Path], None]:
        writers = []
        for retriever in self.retrievers:
            with retriever._lock.read():
                writers.append(retriever._snapshot())
        return partial(write_members, names=self.names, writers=writers)

    def _manifest_extra(self) -> dict[str, Any]:
        return members_manifest(self.retrievers)

    @classmethod
    def _read_data(cls, folder: Path, manifest: dict[str, Any]) -> Self:
        config = dict(manifest["config"])
        specs, members_info = config.pop("retrievers", None), manifest.get("members")
        if not (
            isinstance(specs, list)
            and isinstance(members_info, list)
            and len(specs) == len(members_info)
        ):
            raise CorruptCollectionError(f"{folder}: the manifest does not list the members")
        members = []
        for spec, info in zip(specs, members_info, strict=True):
            members.append(read_member(folder, manifest, spec, info))
        try:
            return cls(members, **config)
        except TypeError as exc:
            raise CorruptCollectionError(
                f"{folder}: manifest config does not fit Hybrid: {exc}"
            ) from None
