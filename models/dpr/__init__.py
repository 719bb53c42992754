"""The DPR dual encoder, passage chunking and the FAISS/BM25 retrievers (issue 6)."""
