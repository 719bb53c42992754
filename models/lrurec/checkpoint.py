"""A trained LRURec on disk: weights, config, the item ids behind each index, and training popularity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from models.lrurec.model import LRURec, LRURecConfig


@dataclass
class Checkpoint:
    model: LRURec
    item_ids: list[str]
    popularity: torch.Tensor  # (num_items + 1,), for the most-popular fallback

    def save(self, folder: Path, extra: dict | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / "model.pt")
        torch.save(self.popularity, folder / "popularity.pt")
        (folder / "config.json").write_text(json.dumps({**self.model.cfg.to_dict(), **(extra or {})}, indent=2))
        (folder / "items.json").write_text(json.dumps(self.item_ids, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path | str) -> Checkpoint:
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        fields = LRURecConfig.__dataclass_fields__
        model = LRURec(LRURecConfig(**{k: v for k, v in config.items() if k in fields}))
        # Trained on a GPU or not, a checkpoint loads on any node; the server moves it where it runs.
        model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
        model.eval()
        item_ids = json.loads((folder / "items.json").read_text())
        popularity = torch.load(folder / "popularity.pt", weights_only=True)
        return cls(model=model, item_ids=item_ids, popularity=popularity)
