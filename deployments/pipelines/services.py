"""What the pipelines run with in the ingress: settings, the database and its API keys, the model deployments'
handles and their states, and the LLM prompts."""

from __future__ import annotations

from dataclasses import dataclass

from ray.serve.handle import DeploymentHandle

from db.pool import Database
from deployments.auth import KeyRing
from deployments.health import DeploymentStates
from deployments.pipelines.llm_prompts import LLMPrompts
from tandem.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    keys: KeyRing
    deployments: DeploymentStates
    prompts: LLMPrompts
    llm: DeploymentHandle
    candidates: DeploymentHandle
    trainer: DeploymentHandle
    retriever: DeploymentHandle
    keywords: DeploymentHandle

    def llm_down(self) -> str | None:
        """Why the LLM deployment cannot take requests, if it cannot: its stage is skipped."""
        return self.deployments.problem("llm")
