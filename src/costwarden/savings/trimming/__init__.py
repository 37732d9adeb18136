"""RAG context trimming: re-rank a request's passages, keep the best (see docs/savings.md)."""
