"""Readers of the data files Tandem imports (MovieLens CSVs, the book catalogue CSV, KorQuAD JSON): files in,
plain records out, no database."""
