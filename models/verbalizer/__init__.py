"""The LlamaRec verbalizer: candidate prompts and ranking by label-token log-probabilities (issue 5)."""
