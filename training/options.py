"""The options of each training run, each defined once: the model's own training config (models/*), plus what the
run reads and holds out. `POST /v1/train` takes them as JSON and `tandem train` as flags made from the same
fields (ops/cli_training.py), so a default, a bound or a description is written here or in the model's config only.

A learning rate that is not given for DPR or the keyword model is the deployment's (`TANDEM_DPR_LR`,
`TANDEM_KEYWORDS_LR`): it depends on the encoder configured, small and local or pretrained.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from models.dpr.train import DPRTrainConfig
from models.kobart.train import KeywordTrainConfig
from models.lora import LoRATrainConfig
from models.lrurec.train import TrainConfig
from models.verbalizer.data import DEFAULT_EXAMPLES
from models.verbalizer.train import RankerTrainConfig

# A misspelt option is refused rather than trained without: the run would look like the one asked for.
FORBID_UNKNOWN = ConfigDict(extra="forbid")


class LRURecOptions(TrainConfig):
    model_config = FORBID_UNKNOWN
    hidden: int | None = Field(default=None, ge=4, description="Model width; LRURec's default when omitted.")
    blocks: int | None = Field(default=None, ge=1, description="LRU blocks; LRURec's default when omitted.")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="Dropout everywhere in the model; "
                                  "LRURec's default when omitted.")
    max_len: int | None = Field(default=None, ge=2, description="Longest history the model reads; LRURec's "
                                "default when omitted.")

    def model_options(self) -> dict:
        """The LRURecConfig fields given."""
        given = {k: v for k, v in self.model_dump(include={"hidden", "blocks", "max_len"}).items() if v is not None}
        if self.dropout is not None:
            given |= {"dropout": self.dropout, "attn_dropout": self.dropout}
        return given


class RankerOptions(RankerTrainConfig):
    model_config = FORBID_UNKNOWN
    examples: int = Field(default=DEFAULT_EXAMPLES, ge=1, le=100_000, description="LlamaRec-style training prompts.")
    negatives: Literal["lrurec", "random"] = Field(
        default="lrurec", description="What the true next item is among: LRURec's top candidates for the prefix "
        "(what the ranker will rank) or random unseen items.")
    eval_users: int | None = Field(default=None, ge=1, description="Tune the fusion weight on the first N "
                                   "validation users and evaluate on the first N test users; all when omitted.")


class DPROptions(DPRTrainConfig):
    model_config = FORBID_UNKNOWN
    holdout: float = Field(default=0.2, ge=0, lt=1, description="Share of documents held out for evaluation.")
    split_seed: int = 0
    hard_negatives: bool = Field(default=True, description="A BM25 hard negative per question, besides the in-batch "
                                 "ones.")
    inverse_cloze: bool = Field(default=True, description="Also learn from the collection's own sentences "
                                "(sentence-to-passage examples; no questions needed).")
    max_questions: int | None = Field(default=None, ge=4, description="Train on the first N training questions; "
                                      "all when omitted.")


class QAOptions(LoRATrainConfig):
    model_config = FORBID_UNKNOWN
    examples: int = Field(default=64, ge=1, le=100_000, description="Question-answer pairs to train on.")
    holdout: float = Field(default=0.2, ge=0, lt=1, description="Share of documents kept out of training.")
    split_seed: int = 0


class KeywordOptions(KeywordTrainConfig):
    model_config = FORBID_UNKNOWN
    holdout: float = Field(default=0.1, ge=0, lt=1, description="Share of pairs held out for the report.")
    max_pairs: int | None = Field(default=None, ge=4, description="Train on the first N training pairs; all when "
                                  "omitted.")


# The first run's trainings (`preset: quick`, the bootstrap): each model in about a minute on 2 cores, good enough to
# serve (docs/benchmarks.md has their quality beside the full runs'). Only the fields named differ from the full run.
QUICK: dict[str, BaseModel] = {
    "lrurec": LRURecOptions(max_epochs=8, patience=3, hidden=64, max_len=50),
    "ranker": RankerOptions(examples=32, eval_users=100),
    "dpr": DPROptions(epochs=1, max_questions=400),
    "qa": QAOptions(examples=8),
    "kobart": KeywordOptions(epochs=5),
}


def config_of(options: BaseModel, config: type[BaseModel]):
    """The model's training config out of a run's options."""
    return config.model_validate(options.model_dump(include=set(config.model_fields)))


def given_lr(options: BaseModel, default: float) -> float:
    """The learning rate asked for, or the deployment's."""
    return options.lr if "lr" in options.model_fields_set else default
