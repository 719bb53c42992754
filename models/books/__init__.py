"""Emotion-based book recommendation: the five questions, the catalogue search query, the LLM prompts."""
