"""DPR retrieval: a dual BERT encoder, chunking, a FAISS index, BM25 over Korean morphemes, and their fusion."""
