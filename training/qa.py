"""`tandem train qa-adapter`: the `qa` LoRA adapter from the database's question-answer pairs.

Each example gives the LLM what serving gives it: the question and the passages the retriever finds for it
(BM25 here, so no encoder is needed), with the passage holding the answer put in when retrieval missed it.
Only the training side of the document split is used, so held-out questions stay unseen.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from models.dpr.data import split_by_document
from models.dpr.retriever import Retriever
from models.lora import LoRATrainConfig
from models.qa.prompts import Context
from models.qa.train import QAExample, train_qa_adapter
from tandem.settings import Settings
from training import registered
from training.lrurec import new_version
from training.options import QAOptions, config_of
from training.retrieval import Collection, read_collection

PIPELINE = "qa"


@dataclass
class QAAdapterRequest:
    options: QAOptions = field(default_factory=QAOptions)
    activate: bool = True
    label: str | None = None  # appended to the version, e.g. "quick"



def qa_examples(collection: Collection, options: QAOptions, top_k: int) -> list[QAExample]:
    train_records, _ = split_by_document(collection.questions, options.holdout, options.split_seed)
    records = random.Random(options.seed).sample(train_records, min(options.examples, len(train_records)))
    retriever = Retriever(collection.passages, dense=None)
    by_document: dict[str, list] = {}
    for p in collection.passages:
        by_document.setdefault(p.document, []).append(p)
    examples = []
    for record, hits in zip(records, retriever.search([r.question for r in records], top_k, "sparse"), strict=True):
        passages = [h.passage for h in hits]
        if not any(record.answer in p.text for p in passages):
            gold = next((p for p in by_document.get(record.document, []) if record.answer in p.text), None)
            if gold is None:
                continue
            passages = passages[: top_k - 1] + [gold]
        examples.append(QAExample(record.question, [Context(p.text, p.source) for p in passages], record.answer))
    return examples


def run_qa_training(settings: Settings, request: QAAdapterRequest, url: str, run_id: int | None = None) -> dict:
    collection = read_collection(url)
    examples = qa_examples(collection, request.options, settings.qa_top_k)
    if not examples:
        raise ValueError("no question-answer pairs whose answer is in a passage: import some first "
                         "(`tandem db import-korquad`)")
    version = new_version(request.label)
    output = settings.artifacts_dir / PIPELINE / version
    params = {"base": settings.llm_path, "examples": len(examples), "holdout": request.options.holdout,
              "top_k": settings.qa_top_k, "max_context_tokens": settings.qa_max_context_tokens}
    return registered.run(
        settings, url, PIPELINE, params, version, output,
        lambda report: train_qa_adapter(settings.llm_path, examples, output,
                                        config_of(request.options, LoRATrainConfig), settings.lora_shape,
                                        settings.qa_max_context_tokens, settings.model_device("train"), on_step=report),
        request.activate, run_id)
