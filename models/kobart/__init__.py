"""KoBART keyword extraction: seq2seq fine-tuning and beam-search generation (issue 7)."""
