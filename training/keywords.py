"""`tandem db import-keywords` and `tandem train kobart`: keyword pairs in the database, the model from them.

No human-labelled Korean keyword set is available offline, so the default pairs are *silver*: KorQuAD
questions, and the sentences of its passages, labelled by the morphological analyser
(`models.korean.analyzer_keywords`). A model trained on them learns to imitate the analyser; users bring
their own TSV (`query<TAB>keyword`, keywords separated by commas, the seed project's format) for real
training. The sentences are there for the small local BART, which starts untrained: on questions alone it
learns a language model of keywords that ignores its input; with twice as many, varied inputs it learns to
copy from them.
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from db import connect
from db.files.korquad_json import paragraphs, questions
from models.kobart.keywords import parse_keywords, set_scores
from models.kobart.model import KeywordModel
from models.kobart.train import KeywordTrainConfig, Pair, train_keywords
from models.korean import analyzer_keywords
from tandem.settings import Settings
from training import registered
from training.lrurec import new_version
from training.options import KeywordOptions, config_of, given_lr

PIPELINE = "kobart"
SourcedPair = tuple[str, list[str], str]  # query, keywords, where the pair comes from
SILVER = "silver:kiwipiepy"
SILVER_SENTENCES = "silver:kiwipiepy:sentences"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def read_tsv(path: Path) -> list[Pair]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"query", "keyword"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: needs tab-separated columns query and keyword; missing {sorted(missing)}")
        return [(row["query"].strip(), parse_keywords(row["keyword"] or "")) for row in reader if row["query"]]


def silver_pairs(korquad: Path) -> list[Pair]:
    return [(q, analyzer_keywords(q)) for q in questions(korquad)]


def silver_sentence_pairs(korquad: Path, min_chars: int = 10, max_chars: int = 120) -> list[Pair]:
    """The passages' sentences of question-like length, labelled by the analyser."""
    sentences = [s for p in paragraphs(korquad) for s in SENTENCE_END.split(p["context"].strip())
                 if min_chars <= len(s) <= max_chars]
    return [(s, analyzer_keywords(s)) for s in dict.fromkeys(sentences)]


async def store_pairs(url: str, pairs: list[Pair], source: str) -> int:
    from db.keywords import upsert_keyword_pairs

    async with connect(url) as conn, conn.transaction():
        return await upsert_keyword_pairs(conn, pairs, source)


async def _read_pairs(url: str) -> list[SourcedPair]:
    from db.keywords import keyword_pairs

    async with connect(url) as conn:
        return await keyword_pairs(conn)


def read_pairs(url: str) -> list[SourcedPair]:
    return asyncio.run(_read_pairs(url))


@dataclass
class KeywordRequest:
    options: KeywordOptions = field(default_factory=KeywordOptions)
    activate: bool = True
    label: str | None = None  # appended to the version, e.g. "quick"



def held_out_report(model: KeywordModel, held: list[SourcedPair]) -> dict:
    """Exact-match scores of the model and of the analyser on the held-out pairs, overall and per source."""
    predicted = [k for i in range(0, len(held), 64) for k in model.extract([q for q, _, _ in held[i : i + 64]])]
    analysed = [analyzer_keywords(q) for q, _, _ in held]
    rows: dict[str, list[int]] = defaultdict(list)
    for i, (_, _, source) in enumerate(held):
        rows[source].append(i)

    def scores(idx: list[int]) -> dict:
        gold = [held[i][1] for i in idx]
        return {"model": set_scores([predicted[i] for i in idx], gold),
                "analyzer": set_scores([analysed[i] for i in idx], gold)}

    return {**scores(list(range(len(held)))), "by_source": {src: scores(idx) for src, idx in sorted(rows.items())}}


def run_keyword_training(settings: Settings, request: KeywordRequest, url: str, run_id: int | None = None) -> dict:
    pairs, options = read_pairs(url), request.options
    config = config_of(options, KeywordTrainConfig).model_copy(update={"lr": given_lr(options, settings.keywords_lr)})
    random.Random(config.seed).shuffle(pairs)
    n_held = round(len(pairs) * options.holdout)
    held, rest = pairs[:n_held], pairs[n_held:]
    train_pairs = [(q, k) for q, k, _ in (rest[: options.max_pairs] if options.max_pairs else rest)]
    if len(train_pairs) < 4:
        raise ValueError("too few keyword pairs in the database: run `tandem db import-keywords` first")
    version = new_version(request.label)
    output = settings.artifacts_dir / PIPELINE / version
    model = KeywordModel.load(settings.bart_path, settings.keywords_generation, settings.model_device("train"))

    def work(report) -> dict:
        metrics = train_keywords(model, train_pairs, config, output, on_epoch=report)
        if held:
            best = KeywordModel.load(output, model.generation, str(model.model.device))
            metrics["held_out"] = held_out_report(best, held)
            (output / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
        return metrics

    params = {"base": settings.bart_path, "pairs": len(train_pairs), "held_out": len(held),
              "train": config.model_dump()}
    return registered.run(settings, url, PIPELINE, params, version, output, work, request.activate, run_id)
