"""`tandem train dpr`, `tandem index build` and `tandem eval retrieval`, on the collection in the database.

Questions are split by document (`holdout` of the documents held out, seeded): training uses only the
training side, evaluation only the held-out side, and both retrieve over the whole collection. A trained
encoder is registered as the `dpr` pipeline and the index built with it as the `index` pipeline, which the
retriever deployment serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path

from db import connect
from models.dpr.chunking import chunk_passages
from models.dpr.data import QARecord, inverse_cloze_examples, split_by_document, training_examples
from models.dpr.encoder import DualEncoder
from models.dpr.evaluate import retrieval_metrics
from models.dpr.retriever import Mode, Passage, Retriever, build_dense, load_dense
from models.dpr.sparse_index import SparseIndex
from models.dpr.train import DPRTrainConfig, train
from models.kobart.model import KeywordModel
from models.korean import analyzer_keywords
from tandem.settings import Settings
from training import registered
from training.keywords import PIPELINE as KEYWORDS
from training.lrurec import new_version
from training.options import DPROptions, config_of, given_lr

DPR, INDEX = "dpr", "index"


@dataclass
class DPRRequest:
    options: DPROptions = field(default_factory=DPROptions)
    output: Path | None = None
    build_index: bool = True
    activate: bool = True
    label: str | None = None  # appended to the version, e.g. "quick"



@dataclass
class Collection:
    passages: list[Passage]
    questions: list[QARecord]


async def _read_collection(url: str) -> Collection:
    from db import passages

    async with connect(url) as conn:
        return Collection([Passage(**r) for r in await passages.passages(conn)],
                          [QARecord(**r) for r in await passages.qa_pairs(conn)])


def read_collection(url: str) -> Collection:
    return asyncio.run(_read_collection(url))



def _hard_negatives(records: list[QARecord], chunks, top: int = 5) -> dict[str, str]:
    """The best BM25 chunk that does not hold the answer, per question (DPR's hard negatives)."""
    sparse = SparseIndex([c.text for c in chunks], list(range(len(chunks))))
    found = {}
    for record, hits in zip(records, sparse.search([r.question for r in records], top), strict=True):
        negative = next((chunks[i].text for i, _ in hits if record.answer not in chunks[i].text), None)
        if negative is not None:
            found[record.question] = negative
    return found


def run_dpr_training(settings: Settings, request: DPRRequest, url: str, run_id: int | None = None) -> dict:
    collection = read_collection(url)
    options = request.options
    config = config_of(options, DPRTrainConfig).model_copy(update={"lr": given_lr(options, settings.dpr_lr)})
    train_records, _ = split_by_document(collection.questions, options.holdout, options.split_seed)
    if options.max_questions is not None:
        train_records = train_records[: options.max_questions]
    model = DualEncoder.from_base(settings.bert_path, max_question_tokens=settings.dpr_max_question_tokens,
                                  max_passage_tokens=settings.dpr_max_passage_tokens,
                                  pooling=settings.dpr_pooling).to(settings.model_device("train"))
    chunks = chunk_passages([(p.id, p.text) for p in collection.passages], model.tokenizer, settings.chunk_tokens)
    document_of = {p.id: p.document for p in collection.passages}
    by_document: dict[str, list] = {}
    for c in chunks:
        by_document.setdefault(document_of[c.passage_id], []).append(c)
    negatives = _hard_negatives(train_records, chunks) if options.hard_negatives else None
    examples = training_examples(train_records, by_document, negatives)
    if options.inverse_cloze:
        examples += inverse_cloze_examples(chunks, config.seed)
    version = new_version(request.label)
    output = request.output or settings.artifacts_dir / DPR / version
    params = {"base": settings.bert_path, "questions": len(train_records), "examples": len(examples),
              "holdout": options.holdout, "split_seed": options.split_seed,
              "hard_negatives": options.hard_negatives, "inverse_cloze": options.inverse_cloze,
              "train": config.model_dump()}
    result = registered.run(settings, url, DPR, params, version, output,
                            lambda report: train(model, examples, config, output, on_epoch=report),
                            request.activate, run_id)
    if request.build_index:
        result["index"] = run_index_build(settings, url, output, activate=request.activate, label=request.label)
    return result


def run_index_build(settings: Settings, url: str, dpr: Path | None = None, activate: bool = True,
                    label: str | None = None) -> dict:
    """Chunk and encode every passage with the given (default: active) DPR encoder and register the index."""
    dpr = dpr or registered.active_artifact(settings, url, DPR)
    if dpr is None:
        raise LookupError("no DPR encoder is registered: run `tandem train dpr` first")
    collection = read_collection(url)
    config = settings.index_config
    version = new_version(label)
    output = settings.artifacts_dir / INDEX / version

    def build(report) -> dict:
        report(stage="encoding", passages=len(collection.passages))
        encoder = DualEncoder.load(dpr).to(settings.model_device("train"))
        dense = build_dense(encoder, collection.passages, config, settings.chunk_tokens, progress=True)
        meta = {"version": version, "dpr_artifact": str(dpr), "passages": len(collection.passages),
                "config": asdict(config)}
        dense.save(output, meta)
        return {**meta, "chunks": len(dense.chunk_passage)}

    params = {"dpr_artifact": str(dpr), "config": asdict(config), "chunk_tokens": settings.chunk_tokens}
    return registered.run(settings, url, INDEX, params, version, output, build, activate)


def run_retrieval_eval(settings: Settings, url: str, modes: list[Mode], dpr: Path | None = None,
                       holdout: float = 0.2, split_seed: int = 0, max_questions: int | None = None,
                       exclude_holdout: float = 0.0, dense_weights: list[float] | None = None,
                       expand_keywords: bool = False) -> dict:
    """Top-k accuracy and MRR@10 of each mode on the held-out questions, over the whole collection. With
    `dpr`, the index is built here from that encoder; otherwise the active index is used.

    `exclude_holdout` leaves out the documents a smaller holdout would hold out: an encoder trained with
    holdout 0.3 can have its fusion weight tuned on the 0.2-0.3 slice and be tested on the first 0.2.
    Hybrid is reported at the default dense weight, and at each of `dense_weights` as `hybrid@w`. With
    `expand_keywords`, sparse is also reported with keywords added to BM25's query, as `/v1/retrieve` does
    with `expand_keywords`: the analyser's (`sparse+keywords`) and, when one is active, the keyword model's
    (`sparse+kobart`)."""
    collection = read_collection(url)
    _, held_out = split_by_document(collection.questions, holdout, split_seed)
    if exclude_holdout:
        excluded = {r.document for r in split_by_document(collection.questions, exclude_holdout, split_seed)[1]}
        held_out = [r for r in held_out if r.document not in excluded]
    held_out = held_out[:max_questions] if max_questions else held_out
    if not held_out:
        raise ValueError("no held-out questions: import question-answer pairs (`tandem db import-korquad`)")
    dense = None
    if any(m != "sparse" for m in modes):
        if dpr is not None:
            dense = build_dense(DualEncoder.load(dpr), collection.passages, settings.index_config,
                                settings.chunk_tokens, progress=True)
        elif (active := registered.active_artifact(settings, url, INDEX)) is not None:
            dense = load_dense(active)
        else:
            raise LookupError("dense retrieval needs a DPR encoder: pass --dpr or run `tandem train dpr`")
    retriever = Retriever(collection.passages, dense, **settings.retriever_fusion)
    questions = [r.question for r in held_out]
    vectors = retriever.encode(questions) if dense is not None else None
    report = {"questions": len(held_out), "passages": len(collection.passages), "holdout": holdout}
    answers = [r.answer for r in held_out]
    runs = [(mode, mode, None) for mode in modes]
    if "hybrid" in modes:
        runs += [(f"hybrid@{w:g}", "hybrid", w) for w in dense_weights or []]
    for name, mode, weight in runs:
        hits = retriever.search(questions, 20, mode, vectors, weight)
        report[name] = retrieval_metrics([[h.passage.text for h in row] for row in hits], answers)
    if expand_keywords and "sparse" in modes:
        extractors = {"sparse+keywords": lambda texts: [analyzer_keywords(t) for t in texts]}
        if (kobart := registered.active_artifact(settings, url, KEYWORDS)) is not None:
            extractors["sparse+kobart"] = KeywordModel.load(kobart, settings.keywords_generation).extract
        for name, extract in extractors.items():
            keywords = [k for i in range(0, len(questions), 64) for k in extract(questions[i : i + 64])]
            expanded = [" ".join([q, *k]) for q, k in zip(questions, keywords, strict=True)]
            hits = retriever.search(questions, 20, "sparse", sparse_queries=expanded)
            report[name] = retrieval_metrics([[h.passage.text for h in row] for row in hits], answers)
    return report
