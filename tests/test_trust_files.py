"""Untrusted collection files (issue 17, findings 6 and 10): an attacker edits the files of a saved
collection and recomputes the manifest's digests, so only the readers' own checks stand.

- ``.npy`` headers are checked before anything is allocated
(:func:`rag_retrievers.index.npy.load_npy`),
  and the arrays of a sparse or multi-vector index against each other;
- analyzer configs read from a manifest are validated key by key, and token patterns that can
  backtrack catastrophically are refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_retrievers import BM25, Document, InvalidInputError, RagRetrieversError
from rag_retrievers.encoders.analysis import Analyzer
from rag_retrievers.errors import CorruptCollectionError
from rag_retrievers.index import storage
from rag_retrievers.index.multivector import IndexSettings, MultiVectorIndex

# -- helpers ------------------------------------------------------------------------------------

TEXTS = [
    "sparse retrieval with inverted indexes",
    "dense retrieval with neural encoders",
    "late interaction scores every token",
    "lexical matching and query expansion",
]


def _bm25_collection(tmp_path: Path) -> Path:
    bm25 = BM25()
    bm25.add([Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)])
    return bm25.save(tmp_path / "col")


def _data(root: Path) -> Path:
    return root / json.loads((root / "manifest.json").read_text())["data"]


def _edit_manifest(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the manifest as an attacker would: its own digest, where it has one, recomputed."""
    manifest = json.loads((root / "manifest.json").read_text())
    edit(manifest)
    if "manifest_sha256" in manifest and hasattr(storage, "manifest_digest"):
        manifest["manifest_sha256"] = storage.manifest_digest(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _redigest(root: Path) -> None:
    """What the attacker does after editing data files: make the manifest's digests match."""

    def edit(manifest: dict[str, Any]) -> None:
        for name in manifest["files"]:
            blob = (root / manifest["data"] / name).read_bytes()
            digest = hashlib.sha256(blob).hexdigest()
            manifest["files"][name] = {"bytes": len(blob), "sha256": digest}

    _edit_manifest(root, edit)


def _npy_with_header(descr: str, shape: tuple[int, ...], payload: bytes) -> bytes:
    """An .npy file whose header says ``descr``/``shape`` whatever ``payload`` holds."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    out = bytearray()

    class Sink:
        def write(self, b: bytes) -> None:
            out.extend(b)

    np.lib.format.write_array_header_1_0(Sink(), header)
    return bytes(out) + payload


def _npy_bytes(array: np.ndarray) -> bytes:
    out = bytearray()

    class Sink:
        def write(self, b: bytes) -> None:
            out.extend(b)

    np.lib.format.write_array(Sink(), array, allow_pickle=False)
    return bytes(out)


def _payload(path: Path) -> bytes:
    with path.open("rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        np.lib.format.read_array_header_1_0(f)
        return f.read()


# -- A. .npy headers: nothing allocated before the header is checked -----------------------------


def test_bm25_open_refuses_a_header_declaring_10_to_the_11_values(tmp_path: Path) -> None:
    root = _bm25_collection(tmp_path)
    target = _data(root) / "sparse_data.npy"
    target.write_bytes(_npy_with_header("<f4", (10**11,), _payload(target)))
    _redigest(root)
    with pytest.raises(CorruptCollectionError, match=r"sparse_data\.npy"):
        BM25.open(root)


@pytest.mark.parametrize(
    ("file", "descr", "shape", "why"),
    [
        ("sparse_data.npy", "<f2", None, "float16"),  # a dtype other than the index's
        ("sparse_data.npy", "<f4", "2-D", "shape"),  # wrong ndim
        ("sparse_indices.npy", "<f8", None, "float64"),  # float row numbers
        ("sparse_indices.npy", "<i4", "short", "bytes"),  # shape smaller than the data
        ("sparse_indices.npy", "<i4", "long", "bytes"),  # shape larger than the data
        ("sparse_indptr.npy", "<i8", "short", "shape"),  # not a pointer per term + 1
    ],
)
def test_bm25_open_refuses_headers_that_do_not_fit(
    tmp_path: Path, file: str, descr: str, shape: str | None, why: str
) -> None:
    root = _bm25_collection(tmp_path)
    target = _data(root) / file
    payload = _payload(target)
    width = np.dtype(descr).itemsize
    n = len(payload) // width
    declared = {None: (n,), "2-D": (1, n), "short": (n - 1,), "long": (n + 1,)}[shape]
    if shape is None:
        payload = payload[: n * width]
    target.write_bytes(_npy_with_header(descr, declared, payload))
    _redigest(root)
    with pytest.raises(CorruptCollectionError, match=rf"{file}.*{why}|{why}.*{file}"):
        BM25.open(root)


def test_bm25_open_refuses_non_finite_values_and_repeated_terms(tmp_path: Path) -> None:
    root = _bm25_collection(tmp_path)
    target = _data(root) / "sparse_data.npy"
    data = np.load(target)
    pristine = target.read_bytes()
    data[0] = np.nan
    target.write_bytes(_npy_bytes(data))
    _redigest(root)
    with pytest.raises(CorruptCollectionError, match="not finite"):
        BM25.open(root)

    target.write_bytes(pristine)
    terms_file = _data(root) / "sparse_terms.json"
    terms = json.loads(terms_file.read_text())
    terms[1] = terms[0]
    terms_file.write_text(json.dumps(terms))
    _redigest(root)
    with pytest.raises(CorruptCollectionError, match="repeats a term"):
        BM25.open(root)


def _tokens_folder(tmp_path: Path, compression: str = "residual") -> tuple[Path, int]:
    rng = np.random.default_rng(0)
    docs = []
    for n in (5, 3, 8, 4, 6, 7):
        x = rng.normal(size=(n, 16)).astype(np.float32)
        docs.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    index = MultiVectorIndex(16, IndexSettings(compression=compression, pool_factor=1))  # type: ignore[arg-type]
    index.add_rows(docs)
    folder = tmp_path / "tokens"
    folder.mkdir()
    index.snapshot()(folder, "tokens")
    return folder, index.n_rows


def test_multivector_read_refuses_a_lengths_header_declaring_10_to_the_11_rows(
    tmp_path: Path,
) -> None:
    folder, n_rows = _tokens_folder(tmp_path)
    target = folder / "tokens.lengths.npy"
    target.write_bytes(_npy_with_header("<i8", (10**11,), _payload(target)))
    with pytest.raises(CorruptCollectionError, match=r"tokens\.lengths\.npy"):
        MultiVectorIndex.read(folder, "tokens", n_rows)


def _set(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / f"tokens.{name}.npy"
        path.write_bytes(_npy_bytes(change(np.load(path))))

    return apply


def _drop(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / f"tokens.{name}.npy").unlink()


def _negative_lengths(lengths: np.ndarray) -> np.ndarray:
    out = lengths.copy()
    out[0] += 4
    out[1] = -4 + out[1] - out[1]  # same sum, one row negative
    out[2] += lengths[1]
    return out


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        # a code past the centroids: an IndexError in every later search
        (
            _set("codes", lambda c: np.where(np.arange(len(c)) == 0, 60_000, c).astype(c.dtype)),
            "centroid id",
        ),
        (_set("lengths", _negative_lengths), "negative"),
        (_set("residuals", lambda r: r[:, :1].copy()), "residuals"),  # too few bytes a token
        (_set("centroids", lambda c: c[:, :8].copy()), "centroids"),  # wrong dimension
        (_set("centroids", lambda c: np.full_like(c, np.inf)), "not finite"),
        (_set("weights", lambda w: w[:2].copy()), "weights"),  # fewer buckets than codes
        (_set("codes", lambda c: c.astype(np.float32)), "codes"),
        (_drop("cutoffs"), "cutoffs"),
        (_drop("centroids"), "centroids"),
    ],
)
def test_multivector_read_refuses_inconsistent_arrays(
    tmp_path: Path, damage: Callable[[Path], None], match: str
) -> None:
    folder, n_rows = _tokens_folder(tmp_path)
    damage(folder)
    with pytest.raises(CorruptCollectionError, match=match):
        MultiVectorIndex.read(folder, "tokens", n_rows)


@pytest.mark.parametrize("compression", ["fp16", "int8"])
def test_multivector_read_checks_each_codec_s_token_arrays(
    tmp_path: Path, compression: str
) -> None:
    folder, n_rows = _tokens_folder(tmp_path, compression)
    reopened = MultiVectorIndex.read(folder, "tokens", n_rows)  # intact: opens, memory-mapped
    assert isinstance(reopened._segments[0].codes, np.memmap)
    path = folder / "tokens.vectors.npy"
    path.write_bytes(_npy_bytes(np.load(path)[:, :4].copy()))
    with pytest.raises(CorruptCollectionError, match=r"tokens\.vectors\.npy"):
        MultiVectorIndex.read(folder, "tokens", n_rows)


def test_load_npy_checks_before_allocating(tmp_path: Path) -> None:
    from rag_retrievers.index.npy import load_npy

    path = tmp_path / "x.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    loaded = load_npy(path, dtypes=np.float32, shape=(None, 3))
    np.testing.assert_array_equal(loaded, np.arange(6).reshape(2, 3))
    mapped = load_npy(path, dtypes=(np.float16, np.float32), shape=(2, 3), mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, loaded)
    with pytest.raises(CorruptCollectionError, match=r"x\.npy holds float32 values"):
        load_npy(path, dtypes=np.int64, shape=(None, 3))
    with pytest.raises(CorruptCollectionError, match=r"expected \(n, 4\)"):
        load_npy(path, dtypes=np.float32, shape=(None, 4))
    with pytest.raises(CorruptCollectionError, match=r"expected \(n,\)"):
        load_npy(path, dtypes=np.float32, shape=(None,))

    np.save(path, np.empty((0, 3), dtype=np.float32))  # nothing to map: a plain empty array
    assert load_npy(path, dtypes=np.float32, shape=(None, 3), mmap_mode="r").shape == (0, 3)

    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptCollectionError, match="object"):
        load_npy(path, dtypes=np.float32, shape=(None,))
    path.write_bytes(_npy_with_header("<f4", (10**11, 10**11), b"\0" * 16))
    with pytest.raises(CorruptCollectionError, match="bytes"):
        load_npy(path, dtypes=np.float32, shape=(None, None), mmap_mode="r")
    path.write_bytes(b"not an npy file at all")
    with pytest.raises(CorruptCollectionError, match=r"x\.npy is not a readable \.npy file"):
        load_npy(path, dtypes=np.float32, shape=(None,))
    with pytest.raises(CorruptCollectionError, match="missing"):
        load_npy(tmp_path / "absent.npy", dtypes=np.float32, shape=(None,))


# -- B. token patterns that backtrack catastrophically -----------------------------------------

EXPONENTIAL = r"(\w+\s?)+$"


def test_an_exponential_token_pattern_in_a_manifest_is_refused_at_once(tmp_path: Path) -> None:
    root = _bm25_collection(tmp_path)
    _edit_manifest(root, lambda m: m["config"]["analyzer"].update(token_pattern=EXPONENTIAL))
    started = time.perf_counter()
    with pytest.raises(RagRetrieversError, match=r"token_pattern.*nested quantifiers") as info:
        BM25.open(root)  # were it accepted, a 40-character query would take minutes
    assert time.perf_counter() - started < 0.5
    assert EXPONENTIAL in str(info.value) or repr(EXPONENTIAL) in str(info.value)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (EXPONENTIAL, "nested quantifiers"),
        (r"(?:a|aa)+$", "alternation"),
        (r"(?:a?a)+$", "quantifier"),
        (r"(?:\w+){2}", "quantifier"),
        (r"(\w)\1", "backreference"),
        (r"\w+(?=x)", "lookahead"),
        (r"(?<!x)\w+", "lookbehind"),
        (r"(a)?(?(1)b|c)", "conditional"),
        (r"\w+\w+x", "unbounded"),  # cubic: seconds on a 1,000-character text
        (r"\w*\s*\w*", "unbounded"),
        (r"\w{1,500}\w{1,500}", "unbounded"),
        (r"a?" * 13, "ways to match"),
        ("a" * 1001, "at most 1000 characters"),
        ("(unclosed", "not a regex"),
    ],
)
def test_risky_token_patterns_are_refused_naming_the_pattern_and_why(
    pattern: str, why: str
) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match="token_pattern") as info:
        Analyzer.from_config({"token_pattern": pattern})
    assert why in str(info.value)
    assert time.perf_counter() - started < 0.5
    with pytest.raises(InvalidInputError):
        Analyzer(token_pattern=pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?u)\b\w\w+\b",
        r"\w+",
        r"[a-z0-9]+",
        r"(?u)\b\w+\b",
        r"\S+",
        r"[^ ]+",
        r"\w+|[^\w\s]",  # words and punctuation: one unbounded quantifier per alternative
        r"(?i)\b[a-z]+(?:'s)?\b",  # an optional group may hold a fixed suffix
        r"(?:a|b)+",  # a character class, not an alternation
        r"\d{4}",
    ],
)
def test_common_token_patterns_are_accepted(pattern: str) -> None:
    analyzer = Analyzer.from_config({"token_pattern": pattern, "stemmer": None})
    assert analyzer.token_pattern == pattern
    analyzer.analyze("Some text: 2024 words, ab ba")


# -- C. every analyzer config value read from a manifest is checked ----------------------------


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"lowercase": "yes"}, r"lowercase must be true or false, got 'yes'"),
        ({"lowercase": 1}, "lowercase must be true or false"),
        ({"stopwords": [1, "a"]}, r"stopwords must be a list name \(english, none\).*1"),
        ({"stopwords": 5}, r"stopwords must be a list name \(english, none\).*int"),
        ({"stopwords": {"a": 1}}, r"stopwords must be a list name"),
        ({"stopwords": "englsh"}, r"stopword list 'englsh'; valid names: english, none"),
        ({"stemmer": 5}, r"unknown stemmer 5; valid names: .*english"),
        ({"stemmer": "klingon"}, r"unknown stemmer 'klingon'; valid names: .*english"),
        ({"token_pattern": 5}, r"token_pattern must be a str, got int"),
        ({"bogus": 1, "stemmer": None}, r"'bogus'; valid keys: token_pattern, lowercase"),
    ],
)
def test_analyzer_config_values_are_validated_by_key(config: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Analyzer.from_config(config)


def test_an_analyzer_config_that_is_no_mapping_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="analyzer config must be a mapping"):
        Analyzer.from_config(["token_pattern"])  # type: ignore[arg-type]


def test_unknown_analyzer_keys_stay_a_type_error_too() -> None:
    with pytest.raises(TypeError, match="bogus"):
        Analyzer.from_config({"bogus": 1})


def test_a_manifest_analyzer_with_a_bad_value_is_refused_on_open(tmp_path: Path) -> None:
    root = _bm25_collection(tmp_path)
    _edit_manifest(root, lambda m: m["config"]["analyzer"].update(lowercase="no"))
    with pytest.raises(RagRetrieversError, match="lowercase must be true or false"):
        BM25.open(root)
