"""LRURec, the candidate generator: linear recurrent units over interaction histories (issue 4)."""
