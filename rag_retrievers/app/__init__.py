"""The application on top of the retrievers: the RAG pipeline, ``ask`` and the ``demo``."""
