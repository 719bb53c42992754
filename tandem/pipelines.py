"""What Tandem serves and what it is made of: the one list that everything naming a pipeline or a model reads.

A *model* is what a training run produces and `model_versions` registers under its name (the LRURec, the ranker
adapter, the DPR encoders, ...). A *pipeline* is what a client calls (the routes of one FastAPI tag): the
deployments it cannot answer without, those it answers without (flagged), and the models it serves.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Model(BaseModel):
    name: str = Field(description="Its name in `model_versions.pipeline` and under var/artifacts/.")
    description: str
    adapter: bool = Field(default=False, description="A LoRA adapter of the base LLM, served as `<base>:<name>`.")
    trained_on: str | None = Field(default=None, description="The model whose active version it is trained on.")
    trainable: bool = Field(default=True, description="`POST /v1/train` and `tandem train` can produce it.")


class Pipeline(BaseModel):
    name: str = Field(description="The FastAPI tag of its routes and its name in /readyz.")
    requires: tuple[str, ...] = Field(description="Deployments (and `database`) it cannot answer without.")
    degrades_without: tuple[str, ...] = Field(default=(), description="Parts it answers without, flagged.")
    models: tuple[str, ...] = ()

    def parts(self) -> set[str]:
        return {*self.requires, *self.degrades_without}


MODELS: dict[str, Model] = {m.name: m for m in (
    Model(name="lrurec", description="LRURec: the candidates of the recommender"),
    Model(name="ranker", description="the verbalizer's LoRA adapter, ranking LRURec's candidates", adapter=True,
          trained_on="lrurec"),
    Model(name="dpr", description="the DPR question and passage encoders (their index is built with them)"),
    Model(name="index", description="the FAISS index of the passages, built by a DPR encoder", trained_on="dpr",
          trainable=False),
    Model(name="qa", description="the LoRA adapter that answers from retrieved passages", adapter=True),
    Model(name="kobart", description="the KoBART keyword model"),
    Model(name="books", description="a LoRA adapter choosing books (registered with `tandem models register`)",
          adapter=True, trainable=False),
)}

PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline(name="recommendation", requires=("database", "candidates"), degrades_without=("llm",),
             models=("lrurec", "ranker")),
    Pipeline(name="candidates", requires=("database", "candidates"), models=("lrurec",)),
    Pipeline(name="qa", requires=("retriever", "llm"), models=("index", "qa")),
    Pipeline(name="retrieval", requires=("retriever",), degrades_without=("keywords",), models=("index",)),
    Pipeline(name="keywords", requires=("keywords",), models=("kobart",)),
    Pipeline(name="books", requires=("database", "retriever"), degrades_without=("llm",), models=("books",)),
    Pipeline(name="llm", requires=("llm",)),
    Pipeline(name="training", requires=("database", "trainer")),
    Pipeline(name="ingestion", requires=("database",)),
)}

ADAPTERS: tuple[str, ...] = tuple(name for name, m in MODELS.items() if m.adapter)
TRAINABLE: tuple[str, ...] = tuple(name for name, m in MODELS.items() if m.trainable)

