"""Vector engines outside the process, both halves of each: Chroma, and Milvus (connection,
filters, collections, and what our indexes send it). Each imports its client library on use."""
