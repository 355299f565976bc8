"""Retriever adapters. Each module imports its heavy dependencies itself, on use."""
