"""The keyword model: a BART seq2seq (gogamza/kobart-base-v1 in production) generating "k1, k2, ..." with beam
search; training and serving share `encode` so they see the same input tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.kobart.keywords import parse_keywords


@dataclass(frozen=True)
class GenerationConfig:
    num_beams: int = 4
    max_new_tokens: int = 32
    max_input_tokens: int = 128


class KeywordModel:
    def __init__(self, model, tokenizer, generation: GenerationConfig = GenerationConfig()):
        self.model, self.tokenizer, self.generation = model, tokenizer, generation

    @classmethod
    def load(cls, path: str | Path, generation: GenerationConfig = GenerationConfig(),
             device: str = "cpu") -> KeywordModel:
        from transformers import AutoTokenizer, BartForConditionalGeneration

        return cls(BartForConditionalGeneration.from_pretrained(path).to(device).eval(),
                   AutoTokenizer.from_pretrained(path), generation)

    def token_ids(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        """`<s> text </s>`, cut to `max_tokens`. Added here because KoBART's tokenizer (like the local one)
        adds no special tokens itself, and a target without `</s>` never learns to stop."""
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_tokens - 2)["input_ids"]
        return [[self.tokenizer.bos_token_id, *x, self.tokenizer.eos_token_id] for x in ids]

    def _padded(self, ids: list[list[int]]) -> dict[str, torch.Tensor]:
        return self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.model.device)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self._padded(self.token_ids(texts, self.generation.max_input_tokens))

    def targets(self, targets: list[str]) -> torch.Tensor:
        """Label ids with padding as -100, so padding is not a target."""
        labels = self._padded(self.token_ids(targets, self.generation.max_new_tokens))["input_ids"]
        labels[labels == self.tokenizer.pad_token_id] = -100
        return labels

    @torch.inference_mode()
    def extract(self, texts: list[str]) -> list[list[str]]:
        """One batched beam search for all texts."""
        if not texts:
            return []
        out = self.model.generate(**self.encode(texts), num_beams=self.generation.num_beams,
                                  max_new_tokens=self.generation.max_new_tokens, early_stopping=True)
        return [parse_keywords(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
