"""The part of Settings that guards the service: who may call it (API keys) and how much work it takes on at once.
`Settings` (tandem/settings.py) inherits these fields; they are read from the same TANDEM_* variables."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccessAndLimits(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- access --------------------------------------------------------------
    auth: Literal["keys", "off"] = Field(default="keys", description="keys: every route but health, readiness, "
                                         "metrics and the page needs `Authorization: Bearer <key>`; off: none does.")
    admin_key: SecretStr | None = Field(default=None, description="An admin key accepted besides the database's; "
                                        "`tandem run` makes one for the run when unset.")
    auth_refresh_s: float = Field(default=5.0, gt=0, description="A revoked key stops working within this.")

    # --- bounded work --------------------------------------------------------
    # A replica takes `<name>_max_ongoing_requests` at once and its callers queue at most `<name>_max_queued_requests`
    # more (-1: no bound); past both a request is refused at once (503 with Retry-After, or an LLM stage's
    # fallback). The ingress refuses past its own limit (health and readiness excepted).
    ingress_max_ongoing_requests: int = Field(default=256, ge=1)
    route_max_ongoing_requests: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="Per route, requests at once per ingress replica, e.g. "
        '\'{"/v1/qa": 8, "/v1/recommendations": 8}\': sized to what a pipeline sustains, the excess is refused before '
        "it spends any compute (a refused request that first ran retrieval would take it from the admitted ones).")
    llm_max_ongoing_requests: int = Field(default=64, ge=1)
    llm_max_queued_requests: int = Field(default=64, ge=-1)
    llm_request_timeout_s: float = Field(default=120.0, gt=0, description="Deadline of an OpenAI request's LLM work; "
                                         "past it the client gets 504 and the call is cancelled.")
    llm_max_n: int = Field(default=16, ge=1, description="Most choices (`n`) one OpenAI request may ask for.")
    llm_stream_interval_ms: float = Field(default=50.0, ge=0, description="A stream's events after its first are "
                                          "sent in batches, one per this interval (0: each at once), as Ray Serve "
                                          "LLM does: fewer wakeups of the serving processes, more compute for the "
                                          "engine on a CPU node.")
    @field_validator("route_max_ongoing_requests")
    @classmethod
    def _routes(cls, limits: dict[str, int]) -> dict[str, int]:
        if bad := [route for route in limits if not route.startswith("/v1/")]:
            raise ValueError(f"routes are paths under /v1/, e.g. /v1/qa: {bad}")
        return limits

    # The engine's OpenMP threads hold every core under load; run below the processes that answer HTTP (proxy,
    # ingress), they leave those a core when a request arrives (docs/benchmarks.md, "Overload").
    llm_engine_nice: int = Field(default=4, ge=0, le=19, description="How much lower than the serving processes the "
                                 "LLM engine's threads run on the CPU (device cpu; 0: the same).")
    llm_turn_slice_s: float = Field(default=0.5, gt=0, description="Where merged adapter engines serve beside the "
                                    "base engine (CPU): how long the base engine computes before a request for "
                                    "another engine may pause its generations.")
    candidates_max_ongoing_requests: int = Field(default=128, ge=1)
    candidates_max_queued_requests: int = Field(default=256, ge=-1)
    retriever_max_ongoing_requests: int = Field(default=128, ge=1)
    retriever_max_queued_requests: int = Field(default=256, ge=-1)
    keywords_max_ongoing_requests: int = Field(default=128, ge=1)
    keywords_max_queued_requests: int = Field(default=256, ge=-1)


def exposed_without_keys(auth: str, host: str | None) -> str | None:
    """Why the service must not start: no keys asked for on an address other machines reach. None when it may."""
    if auth != "off" or host is None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a host name: it may resolve to any interface
        pass
    return (f"TANDEM_AUTH=off on {host}: anyone who reaches the port could train, write and read user data. "
            "Serve with keys (TANDEM_AUTH=keys, the default; `tandem keys create`) or bind 127.0.0.1")
