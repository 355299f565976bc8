"""``python -m rag_retrievers.cli``: the ``rag-retrievers`` command."""

from rag_retrievers.cli import main

raise SystemExit(main())
