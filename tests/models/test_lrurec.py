"""LRURec on small tensors: the parallel scan, masking, preparation, metrics and a training run that learns."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch

from models.lrurec.checkpoint import Checkpoint
from models.lrurec.data import Event, build_sequences, k_core, left_pad, training_windows
from models.lrurec.evaluate import evaluate
from models.lrurec.model import LRURec, LRURecConfig, parallel_scan, sequential_scan
from models.lrurec.recommender import Recommender
from models.lrurec.train import TrainConfig, train
from models.metrics import metrics_from_ranks, target_ranks


@pytest.mark.parametrize("length", [2, 8, 64, 256])
def test_parallel_scan_equals_the_recurrence(length: int) -> None:
    torch.manual_seed(length)
    bu = torch.randn(3, length, 16, dtype=torch.cfloat)
    log_lamb = torch.complex(-torch.rand(16) * 0.3, torch.rand(16) * 6.28)
    assert torch.allclose(parallel_scan(bu, log_lamb), sequential_scan(bu, log_lamb), atol=1e-4)


def test_model_scans_agree_on_the_same_weights() -> None:
    torch.manual_seed(0)
    model = LRURec(LRURecConfig(num_items=50, hidden=16, max_len=20)).eval()
    items = left_pad([[1, 2, 3], list(range(1, 21)), [7]], 20)
    with torch.no_grad():
        fast = model.hidden_states(items, scan=parallel_scan)
        slow = model.hidden_states(items, scan=sequential_scan)
    assert torch.allclose(fast, slow, atol=1e-4)


def test_padding_does_not_leak() -> None:
    torch.manual_seed(0)
    model = LRURec(LRURecConfig(num_items=50, hidden=16, max_len=32)).eval()
    history = [4, 9, 2, 17]
    short, long = model.last_scores(left_pad([history], 4)), model.last_scores(left_pad([history], 32))
    assert torch.allclose(short, long, atol=1e-4)
    with torch.no_grad():
        model.embedding.weight[0] += 5.0  # whatever the padding embedding holds
    assert torch.allclose(model.last_scores(left_pad([history], 32)), long, atol=1e-4)


def test_training_loss_is_cross_entropy_over_every_labelled_position() -> None:
    torch.manual_seed(0)
    model = LRURec(LRURecConfig(num_items=50, hidden=16, max_len=12)).eval()
    inputs, labels = training_windows([list(range(1, 12)), [5, 7, 9, 11, 13, 15]], max_len=12)
    logits, loss = model(inputs, labels)
    full, _ = model(inputs)  # (B, L, num_items + 1) at every position
    expected = torch.nn.functional.cross_entropy(full.reshape(-1, 51), labels.reshape(-1), ignore_index=0)
    assert logits.shape == ((labels > 0).sum().item(), 51)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_excluding_seen_items_leaves_them_out_of_each_positions_softmax() -> None:
    torch.manual_seed(0)
    model = LRURec(LRURecConfig(num_items=20, hidden=16, max_len=6)).eval()
    # The second sequence repeats item 3: a label seen before stays in its softmax.
    inputs, labels = training_windows([[1, 2, 3, 4, 5, 6, 9, 9], [7, 3, 8, 3, 10, 11, 9, 9]], max_len=6)
    _, loss = model(inputs, labels, exclude_seen=True)
    full, _ = model(inputs)
    losses = []
    for b in range(2):
        for t in range(6):
            if labels[b, t] == 0:
                continue
            logits = full[b, t].clone()
            seen = {0, *inputs[b, : t + 1].tolist()} - {labels[b, t].item()}
            logits[list(seen)] = float("-inf")
            losses.append(-torch.log_softmax(logits, 0)[labels[b, t]])
    assert torch.allclose(loss, torch.stack(losses).mean(), atol=1e-6)
    assert loss < model(inputs, labels)[1]


def test_lru_radius_is_initialised_on_the_ring() -> None:
    model = LRURec(LRURecConfig(num_items=10, hidden=32))
    radius = torch.exp(model.blocks[0].lru.log_lambda()).abs()
    assert radius.min() >= 0.8 - 1e-6 and radius.max() <= 0.99 + 1e-6


def _events(histories: dict[str, list[str]]) -> list[Event]:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return [Event(u, i, t0 + timedelta(minutes=n)) for u, items in histories.items() for n, i in enumerate(items)]


def test_k_core_is_iterative() -> None:
    # One pass keeps "x" (5 users) and u5 (5 items); the second finds x's other users gone, then u5.
    histories = {f"u{n}": ["a", "b", "c", "d", "e"] for n in range(5)}
    histories["u5"] = ["a", "b", "c", "d", "x"]
    histories.update({f"u{n}": ["x", f"j{n}1", f"j{n}2", f"j{n}3", f"j{n}4"] for n in range(6, 10)})
    kept = k_core(_events(histories))
    assert {e.user_id for e in kept} == {f"u{n}" for n in range(5)}
    assert {e.item_id for e in kept} == {"a", "b", "c", "d", "e"}


def test_sequences_are_time_ordered_and_split_leave_one_out() -> None:
    histories = {
        f"u{n}": ["a", "b", "c", "d", "e", "f"][n % 2 :] + ["a", "b", "c", "d", "e", "f"][: n % 2] for n in range(6)
    }
    seqs = build_sequences(_events(histories))
    index = seqs.item_index()
    assert seqs.histories[0] == [index[i] for i in histories["u0"]]
    inputs, labels = training_windows(seqs.histories, max_len=8)
    # Training stops before the validation and test items: 4 training items -> 3 next-item pairs.
    assert (labels[0] > 0).sum() == 3
    assert inputs[0, -1] == index["c"] and labels[0, -1] == index["d"]


def test_shuffling_ties_reorders_only_items_rated_at_the_same_time() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # Minute of each rating: a run of three, a lone item, a run of two, then validation and test in the
    # same minute as each other and as the run before them.
    minutes = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 2, "f": 2, "g": 2, "h": 2}
    events = [Event(f"u{n}", i, t0 + timedelta(minutes=m)) for n in range(5) for i, m in minutes.items()]
    seqs = build_sequences(events)
    index = seqs.item_index()
    a, b, c, d, e, f, g, h = (index[i] for i in "abcdefgh")
    assert seqs.histories[0] == [a, b, c, d, e, f, g, h]  # ties in item order, so the split is reproducible
    rng = random.Random(0)
    orders = {tuple(seqs.with_ties_shuffled(rng)[0]) for _ in range(200)}
    for order in orders:
        assert set(order[:3]) == {a, b, c} and order[3] == d and set(order[4:6]) == {e, f}
        assert order[6:] == (g, h)  # validation and test stay where the split put them
    assert len(orders) == 6 * 2  # every order of each run turns up
    assert seqs.histories[0] == [a, b, c, d, e, f, g, h]  # the split itself is untouched


def test_metrics_of_known_ranks() -> None:
    scores = torch.tensor([[float("-inf"), 0.9, 0.8, 0.1], [float("-inf"), 0.1, 0.2, 0.3]])
    ranks = target_ranks(scores, torch.tensor([1, 1]))
    assert ranks.tolist() == [0, 2]
    m = metrics_from_ranks(ranks, ks=(1, 5))
    assert m["Recall@1"] == 0.5 and m["Recall@5"] == 1.0
    assert m["NDCG@5"] == pytest.approx((1 + 1 / 2.0) / 2)
    assert m["MRR"] == pytest.approx((1 + 1 / 3) / 2)


def _cyclic_data(users: int = 40, items: int = 40) -> list[Event]:
    # Each user walks the item cycle from a different start: the next item is always predictable.
    return _events({f"u{n}": [f"i{(n + k) % items:02d}" for k in range(10)] for n in range(users)})


def test_training_learns_a_pattern_and_is_deterministic(tmp_path: Path) -> None:
    seqs = build_sequences(_cyclic_data())
    cfg = LRURecConfig(num_items=seqs.num_items, hidden=32, blocks=1, dropout=0.0, attn_dropout=0.0, max_len=16)
    run = TrainConfig(max_epochs=20, batch_size=8, lr=5e-3, patience=20, seed=3)
    first = train(seqs, cfg, run, tmp_path / "a", progress=False)
    # Chance is 1/31 (40 items, 9 seen); MRR near 1 means the next item is ranked first.
    assert first["test"]["MRR"] > 0.8, first["test"]
    assert first["most_popular_test"]["MRR"] < 0.3
    second = train(seqs, cfg, run, tmp_path / "b", progress=False)
    assert second["test"] == first["test"] and second["best_epoch"] == first["best_epoch"]
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["test"] == first["test"]
    reloaded = Checkpoint.load(tmp_path / "a")
    assert evaluate(reloaded.model, seqs, "test") == first["test"]


def test_training_with_shuffled_ties_is_deterministic(tmp_path: Path) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # The cycle again, two items to a minute: every training history has runs to shuffle.
    seqs = build_sequences([Event(f"u{n}", f"i{(n + k) % 40:02d}", t0 + timedelta(minutes=k // 2))
                            for n in range(40) for k in range(10)])
    cfg = LRURecConfig(num_items=seqs.num_items, hidden=16, blocks=1, max_len=16)
    run = TrainConfig(max_epochs=3, batch_size=8, seed=3, shuffle_ties=True)
    first = train(seqs, cfg, run, tmp_path / "a", progress=False)
    second = train(seqs, cfg, run, tmp_path / "b", progress=False)
    assert first["train"]["shuffle_ties"] is True
    assert (first["test"], first["val"]) == (second["test"], second["val"])


def test_recommender_excludes_history_and_falls_back(tmp_path: Path) -> None:
    seqs = build_sequences(_cyclic_data())
    cfg = LRURecConfig(num_items=seqs.num_items, hidden=16, blocks=1, max_len=16)
    train(seqs, cfg, TrainConfig(max_epochs=2, seed=0), tmp_path, progress=False)
    rec = Recommender(Checkpoint.load(tmp_path))
    ranked, cold, unknown = rec.rank([["i00", "i01", "i02"], [], ["brand-new"]], [5, 3, 3])
    assert not ranked.fallback and not set(ranked.item_ids) & {"i00", "i01", "i02"}
    assert ranked.scores == sorted(ranked.scores, reverse=True) and len(ranked.item_ids) == 5
    assert cold.fallback and unknown.fallback and cold.item_ids == unknown.item_ids
    everything = rec.rank([[]], [rec.num_items])[0]
    assert len(everything.item_ids) == rec.num_items


def test_the_last_max_len_items_and_the_seen_set_rank_as_the_whole_history(tmp_path: Path) -> None:
    seqs = build_sequences(_cyclic_data())
    cfg = LRURecConfig(num_items=seqs.num_items, hidden=16, blocks=1, max_len=4)
    train(seqs, cfg, TrainConfig(max_epochs=1, seed=0), tmp_path, progress=False)
    rec = Recommender(Checkpoint.load(tmp_path))
    history = [f"i{k:02d}" for k in (5, 9, 1, 30, 2, 3, 4, 6)]
    whole = rec.rank([history], [10])[0]
    tail = rec.rank([history[-4:]], [10], [frozenset(history)])[0]
    assert tail == whole
    # Without the seen set, the items older than the tail could come back.
    assert set(rec.rank([history[-4:]], [rec.num_items - 4])[0].item_ids) & set(history[:-4])
