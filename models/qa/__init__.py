"""Retrieval-augmented answering: the KULLM prompt over retrieved passages, and its LoRA adapter's training."""
