"""Read datasets in the BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
            except RecursionError:
                raise DataFormatError(
                    f"{path}:{number}: JSON nested too deeply to read (metadata values are flat: "
                    "scalars or lists of scalars)"
                ) from None
            except ValueError as exc:  # e.g. an integer of more digits than Python converts
                raise DataFormatError(
                    f"{path}:{number}: not valid JSON: {' '.join(str(exc).split())}"
                ) from None
            if not isinstance(obj, dict):
                raise DataFormatError(f"{path}:{number}: expected a JSON object")
            yield number, obj


def read_corpus(
    path: str | os.PathLike[str], *, nested_metadata: Literal["error", "drop"] = "error"
) -> list[Document]:
    """Documents from a JSONL file, every line checked: ``_id`` or ``id`` (a non-empty string;
    an integer is read as its decimal digits, as BEIR corpora have them; never a bool);
    ``text``; optional ``title`` (a string, prepended to the text, as BEIR baselines index it)
    and ``metadata`` (an object, or null for none). A line that breaks a rule raises
    :class:`DataFormatError` naming the file and line.

    A metadata value must be a scalar or a list of scalars; ``nested_metadata="drop"`` (for
    BEIR datasets, whose corpora may carry other fields) drops the others instead.
    """
    docs, seen = [], set()
    for number, obj in read_jsonl(path):
        where = f"{path}:{number}"
        doc_id = obj.get("_id", obj.get("id"))
        text = obj.get("text")
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or doc_id == "":
            got = "nothing" if doc_id is None else _describe(doc_id)
            raise DataFormatError(
                f"{where}: needs an '_id' or 'id' (a non-empty string or an integer), got {got}"
            )
        if not isinstance(text, str):
            raise DataFormatError(f"{where}: needs a string 'text'")
        doc_id = str(doc_id)
        if doc_id in seen:
            raise DataFormatError(f"{where}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        title = obj.get("title")
        if title is not None and not isinstance(title, str):
            raise DataFormatError(f"{where}: 'title' must be a string, got {_describe(title)}")
        metadata = obj.get("metadata")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise DataFormatError(
                f"{where}: 'metadata' must be a JSON object, got {_describe(metadata)}"
            )
        if nested_metadata == "drop":
            metadata = {k: v for k, v in metadata.items() if _flat(v)}
        if title:
            metadata = {"title": title, **metadata}
        try:
            docs.append(
                Document(id=doc_id, text=f"{title} {text}" if title else text, metadata=metadata)
            )
        except ValueError as exc:  # InvalidDocumentError, one line, naming the field
            raise DataFormatError(f"{where}: {exc}") from None
    return docs


def _describe(value: Any) -> str:
    """A JSON value in a message: short, whatever its size."""
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"a string of {len(value)} characters"
    return "an object" if isinstance(value, dict) else f"a {type(value).__name__}"


def _flat(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def read_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    queries = {}
    for number, obj in read_jsonl(path):
        qid, text = obj.get("_id", obj.get("id")), obj.get("text")
        if not isinstance(qid, str | int) or isinstance(qid, bool) or not isinstance(text, str):
            raise DataFormatError(
                f"{path}:{number}: a query needs a string (or integer) '_id' and a string 'text'"
            )
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
    # a BEIR corpus may carry fields of its own in metadata: the flat ones are kept
    corpus = read_corpus(root / "corpus.jsonl", nested_metadata="drop")
    return BeirDataset(root.name, corpus, queries, qrels)
