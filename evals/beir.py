"""Read datasets in the BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_retrievers.errors import InvalidInputError
from rag_retrievers.records import Document


class DataFormatError(InvalidInputError):
    """A data file is missing or a line of it is malformed; the message gives file and line."""


@dataclass
class BeirDataset:
    """A retrieval test collection: documents, the queries of one split and their judgements."""

    name: str
    corpus: list[Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(repr=False)


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a malformed line raises with its number."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(f"{path}:{number}: not UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}:{number}: expected a JSON object")
            yield number, obj


def read_corpus(path: str | os.PathLike[str]) -> list[Document]:
    """Documents from a JSONL file: ``_id`` or ``id``; ``text``; optional ``title`` (prepended
    to the text, as BEIR baselines index it) and flat ``metadata``."""
    docs, seen = [], set()
    for number, obj in read_jsonl(path):
        doc_id = obj.get("_id", obj.get("id"))
        text = obj.get("text")
        if not isinstance(doc_id, str | int) or doc_id == "":
            raise DataFormatError(f"{path}:{number}: needs an '_id' or 'id'")
        if not isinstance(text, str):
            raise DataFormatError(f"{path}:{number}: needs a string 'text'")
        doc_id = str(doc_id)
        if doc_id in seen:
            raise DataFormatError(f"{path}:{number}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        title = obj.get("title") or ""
        metadata = obj.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        metadata = {k: v for k, v in metadata.items() if _flat(v)}
        if title:
            metadata = {"title": title, **metadata}
        try:
            docs.append(
                Document(id=doc_id, text=f"{title} {text}" if title else text, metadata=metadata)
            )
        except ValueError as exc:
            raise DataFormatError(f"{path}:{number}: {exc}") from None
    return docs


def _flat(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    queries = {}
    for number, obj in read_jsonl(path):
        qid, text = obj.get("_id", obj.get("id")), obj.get("text")
        if qid is None or not isinstance(text, str):
            raise DataFormatError(f"{path}:{number}: a query needs '_id' and a string 'text'")
        queries[str(qid)] = text
    return queries


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (query-id, corpus-id, score; header optional) or TREC qrels (4 columns)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if len(row) == 1:
                row = row[0].split()
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) == 4:
                row = [row[0], row[2], row[3]]
            try:
                qid, did, rel = row[0], row[1], int(float(row[2]))
            except (IndexError, ValueError):
                raise DataFormatError(
                    f"{path}:{number}: expected query-id, corpus-id, score"
                ) from None
            qrels.setdefault(qid, {})[did] = rel
    return qrels


def load_beir(directory: str | os.PathLike[str], split: str = "test") -> BeirDataset:
    """Load a BEIR-layout dataset; only queries judged in ``qrels/<split>.tsv`` are kept."""
    root = Path(directory)
    if not root.is_dir():
        raise DataFormatError(f"{root}: no such dataset directory")
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not qrels_file.is_file():
        available = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise DataFormatError(
            f"{qrels_file}: no such split; available: {', '.join(available) or 'none'}"
        )
    qrels = read_qrels(qrels_file)
    queries = {q: t for q, t in read_queries(root / "queries.jsonl").items() if q in qrels}
    return BeirDataset(root.name, read_corpus(root / "corpus.jsonl"), queries, qrels)
