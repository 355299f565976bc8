"""The evaluation harness: retrieval quality now, answer faithfulness and correctness later."""
