"""From a folder of files to chunks in a collection: loaders, chunking, incremental re-indexing.

- :mod:`.loaders` (with :mod:`.pdf` and :mod:`.markup`): PDF pages, Markdown and HTML sections,
  text files and JSONL records, each unit with its source, page or heading path and parent id.
- :mod:`.chunking`: :class:`Chunker` cuts units at paragraphs, sentences and words, measured
  with the retriever's model tokenizer (:mod:`.tokens`), with overlap.
- :mod:`.sync`: :func:`sync_folder` indexes a folder and, run again, re-reads only the files
  whose content hash changed (:mod:`.state` keeps the hashes in the collection).

The PDF, HTML and Markdown loaders and the chunker need the ``ingest`` extra
(``pip install 'rag-retrievers[ingest]'``); everything is imported on first use.
"""

from __future__ import annotations

from rag_retrievers.ingest.chunking import Chunker
from rag_retrievers.ingest.loaders import LoadedFile, Unit, UnreadableFileError, load_file
from rag_retrievers.ingest.sync import Failure, SyncReport, sync_files, sync_folder

__all__ = [
    "Chunker",
    "Failure",
    "LoadedFile",
    "SyncReport",
    "Unit",
    "UnreadableFileError",
    "load_file",
    "sync_files",
    "sync_folder",
]
