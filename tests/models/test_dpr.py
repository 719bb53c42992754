"""Retrieval model code on the local small BERT and real KorQuAD text: chunking, FAISS kinds, BM25 over Korean
morphemes, fusion, the metric, the document split, and a dual encoder that learns."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
from transformers import AutoTokenizer

from models.dpr.chunking import Chunk, chunk_passages, merge_chunk_hits
from models.dpr.data import QARecord, inverse_cloze_examples, split_by_document, training_examples
from models.dpr.dense_index import DenseIndex, IndexConfig
from models.dpr.encoder import DualEncoder
from models.dpr.evaluate import retrieval_metrics
from models.dpr.fusion import reciprocal_rank_fusion, relative_score_fusion
from models.dpr.retriever import Passage, Query, Retriever, build_dense
from models.dpr.sparse_index import SparseIndex
from models.dpr.train import DPRTrainConfig, train
from tandem.settings import Settings


@pytest.fixture(scope="module")
def korquad(base_settings: Settings) -> list[dict]:
    path = base_settings.data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
    return json.loads(path.read_text(encoding="utf-8"))["data"]


@pytest.fixture(scope="module")
def tokenizer(base_settings: Settings):
    return AutoTokenizer.from_pretrained(base_settings.bert_path)


def test_chunks_keep_to_the_budget_and_to_their_passage(korquad, tokenizer) -> None:
    paragraphs = [(n, p["context"]) for n, p in enumerate(korquad[0]["paragraphs"])]
    chunks = chunk_passages(paragraphs, tokenizer, max_tokens=100)
    assert len(chunks) > len(paragraphs)  # KorQuAD paragraphs run longer than 100 tokens
    for chunk in chunks:
        assert chunk.text in paragraphs[chunk.passage_id][1]
        assert len(tokenizer.encode(chunk.text, add_special_tokens=False)) <= 101
    for n, text in paragraphs:  # in order, the chunks of a passage cover all of its text
        own = [c.text for c in chunks if c.passage_id == n]
        assert "".join(own).replace(" ", "") == text.replace(" ", "")


def test_chunk_hits_merge_into_their_passages() -> None:
    assert merge_chunk_hits([7, 3, 7, 5], [0.9, 0.8, 0.7, 0.1]) == [(7, 0.9), (3, 0.8), (5, 0.1)]


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60)
    assert [key for key, _ in fused][:2] == ["b", "c"] or [key for key, _ in fused][0] in ("b", "c")
    assert dict(fused)["b"] == pytest.approx(2 / 62) and dict(fused)["d"] == pytest.approx(1 / 63)
    # A zero weight leaves the other ranking's order; a small one only breaks its ties and adds what it lacks.
    only_second = reciprocal_rank_fusion([["a", "b", "c"], ["c", "b", "d"]], k=60, weights=[0.0, 1.0])
    assert [key for key, _ in only_second][:3] == ["c", "b", "d"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_index_kinds_find_the_exact_neighbours(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32)).astype(np.float32)
    vectors = (centres[rng.integers(0, 50, 12_000)] + 0.3 * rng.normal(size=(12_000, 32))).astype(np.float32)
    ids = np.arange(100_000, 112_000)
    queries = vectors[:100] + 0.01
    config = IndexConfig(kind=kind, ivf_lists=32, pq_subquantizers=8, ivf_probe=8)
    index = DenseIndex.build(vectors, ids, config)
    index.save(tmp_path)
    loaded = DenseIndex.load(tmp_path)
    exact = DenseIndex.build(vectors, ids, IndexConfig()).search(queries, 10)[1]
    found = loaded.search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, found, strict=True)])
    # Product quantization (8 bytes a vector here) is lossy; a random pick would get about 0.001.
    assert len(loaded) == 12_000 and recall >= {"flat": 1.0, "hnsw": 0.9, "ivfpq": 0.3}[kind], recall


def test_ivfpq_with_too_few_vectors_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="needs at least"):
        DenseIndex.build(np.zeros((10, 32), np.float32), np.arange(10), IndexConfig(kind="ivfpq", pq_subquantizers=8))


def test_bm25_over_morphemes_matches_inflected_korean() -> None:
    sparse = SparseIndex(["이사화물 통관 예약을 하면 빠르다", "세관에서 여행자 휴대품을 검사한다"], [10, 11])
    hits = sparse.search(["이사화물 통관예약의 장점은?", "휴대품 검사", "hello"], 5)
    assert [h[0] for h in hits[0]] == [10] and [h[0] for h in hits[1]] == [11] and hits[2] == []


def test_retrieval_metrics_count_the_first_passage_with_the_answer() -> None:
    metrics = retrieval_metrics([["x", "the answer is 42"], ["42 at once"], ["nothing"]], ["42", "42", "42"])
    assert metrics["top1"] == pytest.approx(1 / 3) and metrics["top5"] == pytest.approx(2 / 3)
    assert metrics["mrr@10"] == pytest.approx((0.5 + 1) / 3)


def test_split_by_document_never_shares_a_document() -> None:
    records = [QARecord(f"q{i}", "a", f"doc{i % 10}") for i in range(100)]
    train_side, held = split_by_document(records, 0.2, seed=3)
    assert {r.document for r in train_side}.isdisjoint({r.document for r in held})
    assert len({r.document for r in held}) == 2 and len(train_side) + len(held) == 100


def test_dual_encoder_learns_korquad_and_the_retriever_uses_it(korquad, base_settings: Settings, tmp_path) -> None:
    """A few epochs on 10 articles' questions put their passages well above chance, dense and hybrid."""
    articles = korquad[:10]
    texts = [(a["title"], p["context"]) for a in articles for p in a["paragraphs"]]
    passages = [Passage(id=n, document=t, title=t, source=None, text=text) for n, (t, text) in enumerate(texts)]
    records = [QARecord(qa["question"], qa["answers"][0]["text"], a["title"])
               for a in articles for p in a["paragraphs"] for qa in p["qas"]]
    random.Random(0).shuffle(records)
    model = DualEncoder.from_base(base_settings.bert_path, pooling="mean")
    chunks = chunk_passages([(p.id, p.text) for p in passages], model.tokenizer, 100)
    by_doc: dict[str, list] = {}
    for c in chunks:
        by_doc.setdefault(passages[c.passage_id].document, []).append(c)
    examples = training_examples(records[:300], by_doc)
    metrics = train(model, examples, DPRTrainConfig(epochs=4, batch_size=16, lr=3e-4), tmp_path)
    assert metrics["validation"]["in_batch_accuracy"] > 3 / 16  # chance is 1/16
    loaded = DualEncoder.load(tmp_path)
    assert loaded.pooling == "mean"
    retriever = Retriever(passages, build_dense(loaded, passages, IndexConfig(), 100))
    asked = records[:100]
    answers = [r.answer for r in asked]
    for mode in ("dense", "hybrid"):
        hits = retriever.search([r.question for r in asked], 10, mode)
        # 10 articles' passages: chance at top 10 is about 10 / len(passages) (well under 0.2)
        assert retrieval_metrics([[h.passage.text for h in row] for row in hits], answers)["top10"] > 0.3, mode


def test_inverse_cloze_takes_a_sentence_out_of_its_chunk() -> None:
    text = "임종석은 1989년 2월 15일 지명수배되었다. 그는 전대협 의장이었다. 이후 국회의원이 되었다."
    examples = inverse_cloze_examples([Chunk(1, text), Chunk(2, "문장 하나뿐인 짧은 청크입니다.")], seed=0,
                                      keep_probability=0.0)
    assert len(examples) == 1  # a one-sentence chunk has nothing left to retrieve
    (e,) = examples
    assert e.question in text and e.question not in e.positive and e.hard_negative is None


def test_relative_score_fusion_keeps_a_confident_top_hit() -> None:
    sparse = [("a", 30.0), ("b", 10.0), ("c", 9.0)]
    dense = [("b", 0.9), ("c", 0.8), ("a", 0.1)]
    assert [k for k, _ in relative_score_fusion([sparse, dense], [1.0, 0.1])] == ["a", "b", "c"]
    assert [k for k, _ in relative_score_fusion([sparse, dense], [1.0, 0.0])] == ["a", "b", "c"]
    # Ranks alone cannot tell BM25's confident top hit from a narrow one: RRF puts b first.
    assert reciprocal_rank_fusion([[k for k, _ in sparse], [k for k, _ in dense]])[0][0] == "b"


def test_a_batch_searched_at_once_gives_what_each_query_gives_alone(korquad, base_settings: Settings) -> None:
    """Mixed modes, depths, weights, BM25 queries and filters in one batch: every result as if searched alone."""
    articles = korquad[:5]
    passages = [Passage(id=n, document=a["title"], title=a["title"], source=None, text=p["context"])
                for n, (a, p) in enumerate((a, p) for a in articles for p in a["paragraphs"])]
    questions = [qa["question"] for a in articles for p in a["paragraphs"] for qa in p["qas"]][:12]
    encoder = DualEncoder.from_base(base_settings.bert_path, pooling="mean")
    retriever = Retriever(passages, build_dense(encoder, passages, IndexConfig(), 100), fusion="score",
                          dense_weight=0.1)
    odd = set(range(0, len(passages), 2))
    queries = [Query(q, top_k=3 + i % 5, mode=("dense", "sparse", "hybrid")[i % 3],
                     dense_weight=None if i % 4 else 0.5, sparse_query=f"{q} 역사" if i % 5 == 0 else None,
                     keep=(lambda pid: pid in odd) if i % 6 == 0 else None)
               for i, q in enumerate(questions)]
    # Encoded once: a question encoded beside others is padded, which moves its vector in the last bits.
    dense_rows = [i for i, q in enumerate(queries) if q.mode != "sparse"]
    vectors = retriever.encode([queries[i].question for i in dense_rows])
    row = {i: n for n, i in enumerate(dense_rows)}
    together = retriever.search_many(queries, vectors)
    alone = [retriever.search_many([q], vectors[row[i]: row[i] + 1] if i in row else None)[0]
             for i, q in enumerate(queries)]
    assert together == alone
    assert all(together) and any(len({h.passage.id for h in row} - odd) == 0 for row in together)


LOAD_ON_THREADS = """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from models.dpr.encoder import DualEncoder
with ThreadPoolExecutor(4) as pool:
    loaded = [f.result() for f in [pool.submit(DualEncoder.load, Path(sys.argv[1])) for _ in range(4)]]
print(len(loaded))
"""


def test_encoders_load_on_several_threads_of_a_new_process(base_settings: Settings, project_root, tmp_path) -> None:
    """The retriever loads its two collections' encoders on two threads as a replica starts, the first use of
    transformers in that process; unguarded, two threads failed with "cannot import name" four times in
    five here, and four failed on the first run."""
    DualEncoder.from_base(base_settings.bert_path, pooling="mean").save(tmp_path)
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", LOAD_ON_THREADS, str(tmp_path)], cwd=project_root,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stdout.strip() == "4", done.stderr[-2000:]
