"""``python -m rag_retrievers.cli``: the ``rag-retrievers`` command."""

from rag_retrievers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
