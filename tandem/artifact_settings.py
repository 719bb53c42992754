"""The part of Settings that says where model artifacts live: the store every node reaches, and each node's cache.
`Settings` (tandem/settings.py) inherits these fields; they are read from the same TANDEM_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ArtifactSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", env_file=".env", extra="ignore", populate_by_name=True)

    artifact_url: str | None = Field(
        default=None, description="Where registered model artifacts are kept for every node: unset, the database "
        "itself (in chunks); s3://bucket/prefix, gs://bucket/prefix (with s3fs or gcsfs installed) or "
        "file:///shared/folder, an object store through fsspec.")
    artifact_cache_gib: float = Field(default=20.0, gt=0, description="Each node's cache of fetched artifacts; "
                                      "least recently used ones go beyond this. Keep room for every active version.")
    artifact_cache_dir: Path | None = Field(default=None, description="This node's artifact cache; unset: "
                                            "<var_dir>/artifact-cache.")
