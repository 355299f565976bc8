"""Index storage: the collection directory (manifest, atomic saves, the lock), the document store,
and the sparse, dense-row and multi-vector indexes with their on-disk codecs."""
