"""API key management on the wire."""

from __future__ import annotations

from pydantic import BaseModel, Field

from db.api_keys import ApiKey, Scope


class KeyRequest(BaseModel):
    scope: Scope = Field(description="inference: the model and pipeline routes; admin: also training, ingestion, "
                         "user data and key management.")
    name: str = Field(default="", max_length=200, description="What the key is for, shown in listings.")


class KeyCreated(ApiKey):
    key: str = Field(description="The key itself: shown this once, stored only as a digest.")
