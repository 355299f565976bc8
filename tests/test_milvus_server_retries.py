"""What the client does while a Milvus server is away or recovering, and what it knows of a
server's version, without a server: the retry policy (which errors are retried, the waits), the
error it ends with, and the features each version has."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pymilvus")

from pymilvus import MilvusException

from rag_retrievers.engines import milvus_connection
from rag_retrievers.engines.milvus import MilvusStore
from rag_retrievers.engines.milvus_connection import (
    HYBRID_SEARCH,
    SHARED_COLLECTION,
    SPARSE_VECTORS,
    MilvusFeatureError,
    parse_version,
    retrying,
)
from rag_retrievers.errors import CollectionError, MilvusUnavailableError

URI = "http://127.0.0.1:19530"


class Flaky:
    """A call that raises ``errors`` one by one, then returns ``"done"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(milvus_connection.time, "sleep", waited.append)
    return waited


@pytest.mark.parametrize(
    "message",
    [
        "Fail connecting to server on 127.0.0.1:19530, illegal connection params or server "
        "unavailable",
        "failed to query: collection not loaded[collection=4709]",
        "failed to search: channel not available",
        "service not ready",
    ],
)
def test_a_server_away_or_recovering_is_retried(sleeps: list[float], message: str) -> None:
    call = Flaky(MilvusException(code=2, message=message), MilvusException(message=message))
    assert retrying("search", URI, 3, 0.5, call) == "done"
    assert call.calls == 3
    assert sleeps == [0.5, 1.0]


def test_a_refusal_is_not_retried(sleeps: list[float]) -> None:
    call = Flaky(MilvusException(code=1100, message="invalid parameter: dim"))
    with pytest.raises(CollectionError, match=r"refused to write to it: .*invalid parameter"):
        retrying("write to", URI, 5, 0.5, call)
    assert call.calls == 1
    assert sleeps == []


def test_waits_double_up_to_a_cap_then_the_uri_is_named(sleeps: list[float]) -> None:
    errors = [MilvusException(code=2, message="Fail connecting to server") for _ in range(8)]
    with pytest.raises(MilvusUnavailableError) as err:
        retrying("search", URI, 7, 0.5, Flaky(*errors), max_backoff=3.0)
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]
    message = str(err.value)
    assert f"cannot search Milvus at {URI!r} after 8 attempts" in message
    assert "Fail connecting to server" in message
    assert "repeating one is safe" in message
    assert isinstance(err.value, CollectionError)
    assert isinstance(err.value, ConnectionError)  # generic handlers keep working


def test_the_default_retries_wait_about_a_minute() -> None:
    """Long enough for a standalone server's restart and reload (session TTL 30 s)."""
    delays, delay = [], MilvusStore.backoff
    for _ in range(MilvusStore.retries):
        delays.append(delay)
        delay = min(delay * 2, MilvusStore.max_backoff)
    assert 45 <= sum(delays) <= 90


def test_a_grpc_unavailable_error_is_retried(sleeps: list[float]) -> None:
    grpc = pytest.importorskip("grpc")

    class Unavailable(grpc.RpcError):  # type: ignore[misc]
        def code(self) -> Any:
            return grpc.StatusCode.UNAVAILABLE

    assert retrying("search", URI, 2, 0.1, Flaky(Unavailable())) == "done"
    assert sleeps == [0.1]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v2.3.5-lite", (2, 3, 5)),
        ("2.4.0", (2, 4, 0)),
        ("v2.6", (2, 6, 0)),
        ("Zilliz Cloud Vector Database(Compatible with Milvus 2.5)", (2, 5, 0)),
        ("unknown", None),
        (None, None),
    ],
)
def test_versions_are_read(text: object, version: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == version


def _store(version: str | None) -> MilvusStore:
    store = MilvusStore.__new__(MilvusStore)  # no connection: only what the checks read
    store.uri, store.collection, store.version = URI, "docs", version
    return store


def test_features_by_version() -> None:
    old, mid, new = _store("v2.3.5-lite"), _store("v2.4.9"), _store("v2.6.0")
    assert [old.supports(f) for f in (SPARSE_VECTORS, HYBRID_SEARCH, SHARED_COLLECTION)] == [
        False,
        False,
        False,
    ]
    assert [mid.supports(f) for f in (SPARSE_VECTORS, HYBRID_SEARCH, SHARED_COLLECTION)] == [
        True,
        True,
        False,
    ]
    assert all(new.supports(f) for f in (SPARSE_VECTORS, HYBRID_SEARCH, SHARED_COLLECTION))
    lite = _store(None)  # milvus-lite has them all; so, unless it says otherwise, has a server
    assert lite.supports(SHARED_COLLECTION)
    assert _store("a version we cannot read").supports(SPARSE_VECTORS)


def test_a_missing_feature_names_the_version_and_what_to_do() -> None:
    with pytest.raises(MilvusFeatureError) as err:
        _store("v2.3.5-lite").require(SPARSE_VECTORS, "bm25 (field 'bm25')", "keep it here")
    assert str(err.value) == (
        "bm25 (field 'bm25') needs sparse vectors (SPARSE_FLOAT_VECTOR fields), which Milvus "
        f"servers have since Milvus 2.4; the server at {URI} is version v2.3.5-lite. Upgrade it "
        "to Milvus 2.4 or later, or keep it here"
    )
    assert isinstance(err.value, CollectionError)
