"""Scoring maths, numpy only: BM25 weights, fusion, MaxSim, MUVERA, PLAID candidates, feedback
models, k-means and top-k. Pure functions over arrays and records; nothing here stores or loads."""
