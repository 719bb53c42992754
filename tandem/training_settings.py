"""The part of Settings that says where and how a training task runs: what it asks Ray for (CPUs, a GPU share,
custom resources that keep it on the nodes meant for it) and its torch threads. `Settings` (tandem/settings.py)
inherits these fields; they are read from the same TANDEM_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", env_file=".env", extra="ignore", populate_by_name=True)

    train_num_cpus: float = Field(
        default=0.25, gt=0, description="CPUs a training task asks Ray for; on 2 cores the LLM (1) and the three "
        "small models (0.25 each) leave 0.25.",
    )
    train_num_gpus: float = Field(default=0.0, ge=0, description="GPUs a training task asks Ray for (cuda); its "
                                  "models then train on the GPU, on the CPU otherwise.")
    train_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources a training task asks for, e.g. {\"training\": 1} to "
        "run trainings only on nodes started with `ray start --resources '{\"training\": 1}'`.")
    train_threads: int = Field(default=1, ge=0, description="Torch threads of a training beside serving (0: every "
                               "core); the first-run bootstrap, with nothing to serve yet, uses every core.")
