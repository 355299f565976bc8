"""The learned-sparse scale corpus: the scale corpus's documents as SPLADE vectors.

The 18,094 source documents of :mod:`~rag_retrievers.evals.bench.scale` are encoded once (cached
on disk, keyed by the model's identity and the texts' content); the ``N``-document collection is
then built without running the model again, by the scale corpus's rule: copy ``c`` > 0 of a
document drops each of its words with probability 0.1 (the same seeded draws as the scale
corpus, so the copies are the same texts), and its vector is the source's vector less the terms
that only dropped words produced: a word piece of a dropped word stays when a kept word has it
too (expansion terms, which no one word produced, stay).

A collection is a CSR matrix (rows = documents, columns = the model's vocabulary ids).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from rag_retrievers.evals.bench.scale_corpus import DROP

#: documents encoded per cache chunk: an interrupted encoding resumes at the last whole chunk
CHUNK = 2048


@dataclass(frozen=True)
class SourceVectors:
    """The source documents as model vectors, and each document's words as word-piece ids."""

    ids: list[str]
    vectors: sp.csr_matrix  # (documents, vocabulary) float32
    word_starts: np.ndarray  # per document: offset of its first word in words_per_doc order
    n_words: np.ndarray  # per document: its number of whitespace-separated words
    piece_word: np.ndarray  # per word piece: the global number of the word it belongs to
    piece_id: np.ndarray  # per word piece: its vocabulary id
    terms: list[str]  # vocabulary id -> term, as the encoder spells it


def _digest(identity: dict[str, Any], texts: Sequence[str]) -> str:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:16]


def encode_sources(
    encoder: Any,
    texts: Sequence[str],
    cache: Path | None,
    log: Callable[[str], None] = lambda _: None,
) -> sp.csr_matrix:
    """``texts`` encoded by ``encoder`` (a SpladeEncoder) as a CSR matrix over its vocabulary,
    from ``cache`` when encoded before (chunk by chunk: an interrupted run keeps its chunks)."""
    folder = None
    if cache is not None:
        folder = cache / f"splade-{_digest(encoder.identity(), texts)}"
        folder.mkdir(parents=True, exist_ok=True)
    term_ids = {t: i for i, t in enumerate(encoder.terms)}
    chunks = []
    for start in range(0, len(texts), CHUNK):
        part = texts[start : start + CHUNK]
        file = folder / f"chunk-{start // CHUNK:05d}.npz" if folder is not None else None
        matrix = _read_chunk(file, len(part), len(term_ids)) if file is not None else None
        if matrix is None:
            log(f"encoding documents {start:,}..{start + len(part):,} of {len(texts):,}")
            began = time.perf_counter()
            dicts = encoder.encode_documents(list(part), show_progress=False)
            seconds = time.perf_counter() - began
            matrix = _to_csr(dicts, term_ids)
            if file is not None:
                tmp = file.with_suffix(".tmp.npz")
                sp.save_npz(tmp, matrix, compressed=False)
                file.with_suffix(".json").write_text(json.dumps({"seconds": seconds}), "utf-8")
                tmp.replace(file)
        chunks.append(matrix)
    if not chunks:
        return sp.csr_matrix((0, len(term_ids)), dtype=np.float32)
    return sp.vstack(chunks, format="csr")


def encoding_seconds(encoder: Any, texts: Sequence[str], cache: Path) -> float | None:
    """Seconds the cached encoding of ``texts`` took when it was made (``None`` when a chunk
    holds no record of it)."""
    folder = cache / f"splade-{_digest(encoder.identity(), texts)}"
    total = 0.0
    for start in range(0, len(texts), CHUNK):
        record = folder / f"chunk-{start // CHUNK:05d}.json"
        try:
            total += float(json.loads(record.read_text("utf-8"))["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return total


def _read_chunk(file: Path, rows: int, width: int) -> sp.csr_matrix | None:
    if not file.is_file():
        return None
    # our own cache (written above), not a collection folder: a wrong shape is a miss
    matrix = sp.load_npz(file)
    if matrix.shape != (rows, width):
        return None
    return sp.csr_matrix(matrix, dtype=np.float32)


def _to_csr(dicts: list[dict[str, float]], term_ids: dict[str, int]) -> sp.csr_matrix:
    width = len(term_ids)
    lengths = [len(d) for d in dicts]
    cols = np.fromiter(
        (term_ids.get(t, -1) for d in dicts for t in d), np.int64, count=sum(lengths)
    )
    vals = np.fromiter((w for d in dicts for w in d.values()), np.float32, count=sum(lengths))
    keep = cols >= 0
    rows = np.repeat(np.arange(len(dicts)), lengths)
    matrix = sp.csr_matrix(
        (vals[keep], (rows[keep], cols[keep])), shape=(len(dicts), width), dtype=np.float32
    )
    matrix.sort_indices()
    return matrix


def word_pieces(
    tokenizer: Any, term_ids: dict[str, int], texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each text's whitespace-separated words (``str.split``, the scale corpus's words) as word
    pieces: (number of words per text, piece -> global word number, piece -> vocabulary id).
    Every distinct word is tokenized once."""
    split = [text.split() for text in texts]
    n_words = np.asarray([len(words) for words in split], dtype=np.int64)
    distinct = list(dict.fromkeys(w for words in split for w in words))
    tokens = tokenizer(distinct, add_special_tokens=False)["input_ids"]
    vocab_terms = tokenizer.convert_ids_to_tokens
    # vocabulary ids of the tokenizer are the encoder's term ids where the names agree
    pieces_of = {}
    for word, ids in zip(distinct, tokens, strict=True):
        names = vocab_terms(ids)
        pieces_of[word] = [term_ids[n] for n in names if n in term_ids]
    word_of, piece = [], []
    g = 0
    for words in split:
        for w in words:
            ps = pieces_of[w]
            word_of.extend([g] * len(ps))
            piece.extend(ps)
            g += 1
    return n_words, np.asarray(word_of, np.int64), np.asarray(piece, np.int64)


def load_sources(
    encoder: Any,
    documents: list[tuple[str, str]],
    cache: Path | None,
    log: Callable[[str], None] = lambda _: None,
) -> SourceVectors:
    """The source documents ``(id, text)`` encoded (through ``cache``) and split into words."""
    texts = [t for _, t in documents]
    vectors = encode_sources(encoder, texts, cache, log)
    term_ids = {t: i for i, t in enumerate(encoder.terms)}
    n_words, piece_word, piece_id = word_pieces(encoder.model.tokenizer, term_ids, texts)
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]]).astype(np.int64)
    return SourceVectors(
        [i for i, _ in documents],
        vectors,
        starts,
        n_words,
        piece_word,
        piece_id,
        list(encoder.terms),
    )


def kept_words(n_words: np.ndarray, copy: int) -> np.ndarray:
    """Which words copy ``copy`` keeps (bool per word, all documents in order): the scale
    corpus's draws, ``random.Random(copy).random() >= DROP`` per word, and a document that
    would lose every word keeps its first."""
    total = int(n_words.sum())
    rng = random.Random(copy)
    draws = np.fromiter((rng.random() for _ in range(total)), np.float64, count=total)
    kept = draws >= DROP
    starts = np.concatenate([[0], np.cumsum(n_words)[:-1]]).astype(np.int64)
    has_words = n_words > 0
    kept_counts = np.add.reduceat(kept, starts[has_words]) if has_words.any() else np.zeros(0)
    empty = starts[has_words][kept_counts == 0]
    kept[empty] = True
    return kept


@dataclass(frozen=True)
class WordTerms:
    """Which (document, term) pairs the sources' words produce, computed once per collection:
    each copy then only counts, per pair, whether a kept word still produces it."""

    piece_pair: np.ndarray  # per word piece: its (document, term) pair
    entry_pair: np.ndarray  # per vector entry: its pair, -1 where no word has that term
    n_pairs: int

    @classmethod
    def of(cls, sources: SourceVectors) -> WordTerms:
        vectors = sources.vectors
        width = vectors.shape[1]
        doc_of_word = np.repeat(np.arange(len(sources.n_words)), sources.n_words)
        keys = doc_of_word[sources.piece_word] * width + sources.piece_id
        pairs, piece_pair = np.unique(keys, return_inverse=True)
        rows = np.repeat(np.arange(vectors.shape[0]), np.diff(vectors.indptr))
        entry_keys = rows * width + vectors.indices
        found = np.minimum(np.searchsorted(pairs, entry_keys), max(len(pairs) - 1, 0))
        match = pairs[found] == entry_keys if len(pairs) else np.zeros(len(entry_keys), bool)
        return cls(piece_pair, np.where(match, found, -1), len(pairs))


def copy_vectors(
    sources: SourceVectors, copy: int, count: int, words: WordTerms | None = None
) -> sp.csr_matrix:
    """The first ``count`` documents of copy ``copy``: each source vector less the terms that
    only its dropped words produced. Copy 0 is the sources themselves."""
    vectors = sources.vectors[:count]
    if copy == 0:
        return vectors
    words = words if words is not None else WordTerms.of(sources)
    kept = kept_words(sources.n_words, copy)
    still_made = np.bincount(words.piece_pair[kept[sources.piece_word]], minlength=words.n_pairs)
    entry_pair = words.entry_pair[: vectors.nnz]
    drop = (entry_pair >= 0) & (still_made[entry_pair] == 0)
    keep = ~drop
    counts = np.diff(np.concatenate([[0], np.cumsum(keep)])[vectors.indptr])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return sp.csr_matrix(
        (vectors.data[keep], vectors.indices[keep], indptr), shape=vectors.shape, dtype=np.float32
    )


def collection(sources: SourceVectors, n_docs: int) -> tuple[sp.csr_matrix, list[str]]:
    """The ``n_docs`` documents of the scale corpus as vectors, and their ids (copy ``c`` > 0
    of ``{dataset}/{id}`` is ``{dataset}/{id}#{c}``)."""
    n_sources = len(sources.ids)
    if n_sources == 0:
        raise ValueError("no source documents")
    words = WordTerms.of(sources)
    parts: list[sp.csr_matrix] = []
    ids: list[str] = []
    copy, produced = 0, 0
    while produced < n_docs:
        count = min(n_sources, n_docs - produced)
        parts.append(copy_vectors(sources, copy, count, words))
        suffix = f"#{copy}" if copy else ""
        ids.extend(f"{i}{suffix}" for i in sources.ids[:count])
        produced += count
        copy += 1
    return sp.vstack(parts, format="csr"), ids
