"""The keyword model's pieces on real text: parsing, scores, the analyser, and a small BART that learns."""

from __future__ import annotations

import json
import random

import pytest

from models.kobart.keywords import parse_keywords, set_scores, to_target
from models.kobart.model import GenerationConfig, KeywordModel
from models.kobart.train import KeywordTrainConfig, train_keywords, validation_loss
from models.korean import analyzer_keywords
from tandem.settings import Settings


def test_generated_text_becomes_a_clean_list() -> None:
    assert parse_keywords(" 이사화물, 통관 ,예약,, 통관, 장점 ") == ["이사화물", "통관", "예약", "장점"]
    assert parse_keywords("") == [] and to_target(["a", "b"]) == "a, b"


def test_set_scores_are_micro_averaged_exact_matches() -> None:
    scores = set_scores([["a", "b"], ["c"]], [["a"], ["c", "d"]])
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)


def test_the_analyser_keeps_nouns_and_content_predicates() -> None:
    assert analyzer_keywords("이사화물 통관예약을 하면 뭐가 좋나요?") == ["이사", "화물", "통관", "예약", "좋다"]
    assert analyzer_keywords("여행자 휴대품 면세 한도는 얼마인가요?") == ["여행자", "휴대품", "면세", "한도"]


def test_small_bart_learns_silver_keywords(base_settings: Settings, tmp_path) -> None:
    path = base_settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
    questions = [qa["question"] for a in json.loads(path.read_text(encoding="utf-8"))["data"]
                 for p in a["paragraphs"] for qa in p["qas"]]
    random.Random(0).shuffle(questions)
    pairs = [(q, analyzer_keywords(q)) for q in questions[:400]]
    model = KeywordModel.load(base_settings.bart_path, GenerationConfig(num_beams=2, max_new_tokens=24))
    untrained = validation_loss(model, pairs[:80], 16)
    metrics = train_keywords(model, pairs, KeywordTrainConfig(epochs=3, batch_size=16, lr=3e-3), tmp_path)
    # Far below the untrained model's loss (about ln 8000 = 9 nats): it has learned the targets' vocabulary.
    # Copying the right words needs a longer run (docs/benchmarks.md); `validation` holds their scores.
    assert metrics["val_loss"] < untrained - 2.0, (metrics["val_loss"], untrained)
    assert set(metrics["validation"]) == {"precision", "recall", "f1", "texts"}
    (keywords,) = KeywordModel.load(tmp_path).extract(["세관 통관 절차는?"])
    assert len(keywords) == len(set(keywords))
