"""The DPR dual encoder (Karpukhin et al., 2020): a question BERT and a passage BERT, one vector each,
similarity by dot product. Saved as two Hugging Face folders and one tokenizer.

The vector is the [CLS] state, as in DPR, for pretrained encoders (klue/bert-base). A small BERT trained
from scratch learns far faster from the mean of its token states: with [CLS] it stayed at chance for two
epochs on KorQuAD here, with the mean it reached 62% in-batch accuracy in three. So pooling is a setting.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

QUESTION_DIR, PASSAGE_DIR, META_FILE = "question_encoder", "passage_encoder", "dpr.json"
Pooling = Literal["cls", "mean"]
# transformers resolves its classes on first use, and two threads doing that at once can fail with "cannot import
# name 'AutoTokenizer'": the retriever loads its two collections' encoders on two threads.
_FIRST_IMPORT = threading.Lock()


def _bert_classes():
    with _FIRST_IMPORT:
        from transformers import AutoTokenizer, BertModel
    return AutoTokenizer, BertModel


class DualEncoder(nn.Module):
    def __init__(self, question_encoder, passage_encoder, tokenizer, max_question_tokens: int = 64,
                 max_passage_tokens: int = 128, pooling: Pooling = "cls"):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"unknown pooling {pooling!r}: use cls or mean")
        self.question_encoder, self.passage_encoder, self.tokenizer = question_encoder, passage_encoder, tokenizer
        self.max_question_tokens, self.max_passage_tokens = max_question_tokens, max_passage_tokens
        self.pooling = pooling

    @classmethod
    def from_base(cls, base: str, **limits) -> DualEncoder:
        """Both encoders start from the same pretrained BERT (klue/bert-base in production)."""
        AutoTokenizer, BertModel = _bert_classes()
        return cls(BertModel.from_pretrained(base),
                   BertModel.from_pretrained(base), AutoTokenizer.from_pretrained(base),
                   **limits)

    @classmethod
    def load(cls, folder: Path) -> DualEncoder:
        AutoTokenizer, BertModel = _bert_classes()
        meta = json.loads((folder / META_FILE).read_text())
        model = cls(BertModel.from_pretrained(folder / QUESTION_DIR),
                    BertModel.from_pretrained(folder / PASSAGE_DIR),
                    AutoTokenizer.from_pretrained(folder), meta["max_question_tokens"], meta["max_passage_tokens"],
                    meta["pooling"])
        return model.eval()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.question_encoder.save_pretrained(folder / QUESTION_DIR)
        self.passage_encoder.save_pretrained(folder / PASSAGE_DIR)
        self.tokenizer.save_pretrained(folder)
        (folder / META_FILE).write_text(json.dumps({
            "max_question_tokens": self.max_question_tokens, "max_passage_tokens": self.max_passage_tokens,
            "pooling": self.pooling, "dim": self.dim}))

    @property
    def dim(self) -> int:
        return self.passage_encoder.config.hidden_size

    def token_count(self, texts: list[str], question: bool) -> int:
        """Tokens the question (or passage) encoder reads of `texts`, each truncated as it is encoded."""
        limit = self.max_question_tokens if question else self.max_passage_tokens
        return sum(len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=limit)["input_ids"])

    def _tokens(self, texts: list[str], max_tokens: int) -> dict[str, torch.Tensor]:
        device = next(self.parameters()).device
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def _embed(self, encoder, texts: list[str], max_tokens: int) -> torch.Tensor:
        tokens = self._tokens(texts, max_tokens)
        states = encoder(**tokens).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(dim=1) / mask.sum(dim=1)

    def embed_questions(self, texts: list[str]) -> torch.Tensor:
        return self._embed(self.question_encoder, texts, self.max_question_tokens)

    def embed_passages(self, texts: list[str]) -> torch.Tensor:
        return self._embed(self.passage_encoder, texts, self.max_passage_tokens)

    @torch.inference_mode()
    def encode_questions(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(self.embed_questions, texts, batch_size)

    @torch.inference_mode()
    def encode_passages(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._encode(self.embed_passages, texts, batch_size, progress)

    def _encode(self, embed, texts: list[str], batch_size: int, progress: bool = False) -> np.ndarray:
        from tqdm.auto import tqdm

        # Switching modes walks every module: a served encoder, already in eval mode, is not switched per batch.
        was_training = self.training
        if was_training:
            self.eval()
        parts = [np.zeros((0, self.dim), dtype=np.float32)]
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encode passages", unit="batch", disable=not progress or len(starts) < 2):
            parts.append(embed(texts[start : start + batch_size]).float().cpu().numpy())
        if was_training:
            self.train()
        return np.concatenate(parts)
