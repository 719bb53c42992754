"""The training config shared by the encoders fine-tuned with a warm-up schedule and early stopping (DPR, KoBART)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FineTuneConfig(BaseModel):
    epochs: int = Field(default=10, ge=1, le=100)
    batch_size: int = Field(default=32, ge=2, le=1024)
    lr: float = Field(default=2e-5, gt=0, le=1, description="AdamW learning rate.")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_fraction: float = Field(default=0.1, ge=0, lt=1, description="Share of the steps with a rising rate.")
    max_grad_norm: float = Field(default=1.0, gt=0)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1, description="Share of the examples held out to "
                                       "stop early on.")
    patience: int = Field(default=3, ge=1, description="Epochs without a better validation loss before stopping.")
    seed: int = 0
