"""The verbalizer on the real SmolLM2 tokenizer: LlamaRec's prompt, truncation, labels, training targets."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from models.lrurec.data import Sequences
from models.verbalizer.data import candidate_examples, random_examples, training_prefixes
from models.verbalizer.prompts import LabelError, Profile, Verbalizer, VerbalizerConfig, adapter_config
from models.verbalizer.scoring import candidate_metrics
from tandem.settings import Settings


@pytest.fixture(scope="module")
def tokenizer(base_settings: Settings):
    return AutoTokenizer.from_pretrained(base_settings.llm_path)


def test_prompt_is_llamarec_alpaca_with_letters(tokenizer) -> None:
    v = Verbalizer(tokenizer, VerbalizerConfig(max_history=2))
    text = v.text(["Old (1990)", "Toy Story (1995)", "Heat (1995)"], ["Alien (1979)", "Casino (1995)"])
    assert text.startswith("### Instruction:\nGiven user history in chronological order, recommend an item from the "
                           "candidate pool with its index letter.\n\n### Input:\nUser history: (1) Toy Story (1995)")
    assert "Old (1990)" not in text  # only the last two history items
    assert "Candidate pool: (A) Alien (1979) \n (B) Casino (1995)" in text
    assert text.endswith("### Response:\n")


def test_compact_layout_writes_the_same_items_in_fewer_tokens(tokenizer) -> None:
    history = ["Old (1990)", "Toy Story (1995)", "Heat (1995)", "Se7en (a.k.a. Seven) (1995)"]
    candidates = ["Alien (1979)", "Casino (1995)", "2001: A Space Odyssey (1968)", "Untitled"]
    compact = Verbalizer(tokenizer, VerbalizerConfig(layout="compact"))
    text = compact.text(history, candidates)
    assert "User history: \nOld '90\nToy Story '95\nHeat '95\nSe7en (a.k.a. Seven) '95;" in text
    assert "Candidate pool: \nA Alien '79\nB Casino '95\nC 2001: A Space Odyssey '68\nD Untitled\n" in text
    # Each label is the same single token as the one the ranking is read from.
    ids = compact.prompt_ids(history, candidates)
    assert all(ids.count(label) == 1 for label in compact.label_ids[:4])
    assert len(ids) < 0.8 * len(Verbalizer(tokenizer).prompt_ids(history, candidates))


def test_an_adapter_is_served_with_the_prompt_it_was_trained_on(tmp_path) -> None:
    import json

    assert adapter_config(tmp_path) is None  # trained elsewhere: the settings' prompt
    saved = VerbalizerConfig(layout="compact", max_history=7)
    (tmp_path / "metrics.json").write_text(json.dumps({"verbalizer": saved.model_dump()}))
    assert adapter_config(tmp_path) == saved
    (tmp_path / "metrics.json").write_text(json.dumps({"verbalizer": {"template": "llamarec", "max_history": 10}}))
    assert adapter_config(tmp_path).layout == "llamarec"  # saved before layouts existed


def test_labels_are_single_distinct_tokens(tokenizer) -> None:
    v = Verbalizer(tokenizer)
    assert len(v.label_ids) == 20 and len(set(v.label_ids)) == 20
    assert [tokenizer.decode([i]) for i in v.label_ids] == list("ABCDEFGHIJKLMNOPQRST")


def test_titles_are_cut_and_long_prompts_keep_their_end(tokenizer) -> None:
    v = Verbalizer(tokenizer, VerbalizerConfig(max_title_tokens=3, max_prompt_tokens=64))
    long_title = "The Lord of the Rings: The Fellowship of the Ring (2001)"
    text = v.text([long_title], ["Alien (1979)"])
    assert long_title not in text and "The Lord of" in text
    ids = v.prompt_ids([f"Movie {i}" for i in range(50)], ["Alien (1979)"] * 20)
    assert len(ids) == 64
    assert tokenizer.decode(ids).endswith("### Response:\n")


def test_gemmarec_template_adds_profile_and_comments(tokenizer) -> None:
    v = Verbalizer(tokenizer, VerbalizerConfig(template="gemmarec"))
    text = v.text(["Heat (1995)"], ["Alien (1979)"], Profile(attributes={"job": "nurse", "style": "calm"},
                                                            comments=["too long"]))
    assert "User profile: job: nurse, style: calm" in text and "User comments: too long" in text


def test_training_targets_are_the_letter_and_the_end_token(tokenizer) -> None:
    v = Verbalizer(tokenizer)
    ids, labels = v.training_ids(["Heat (1995)"], ["Alien (1979)", "Casino (1995)", "Fargo (1996)"], answer=2)
    assert ids[:-2] == v.prompt_ids(["Heat (1995)"], ["Alien (1979)", "Casino (1995)", "Fargo (1996)"])
    assert [t for t in labels if t != -100] == [v.label_ids[2], tokenizer.eos_token_id]


class SplittingTokenizer:
    """A tokenizer whose letters after 'L' are two tokens: what a model with no single-letter tokens does."""

    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text] + ([1] if text > "L" else [])

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids if i > 1)


def test_multi_token_labels_fail_at_start_naming_them() -> None:
    with pytest.raises(LabelError, match="'M'.*'T'"):
        Verbalizer(SplittingTokenizer())
    assert len(Verbalizer(SplittingTokenizer(), VerbalizerConfig(num_candidates=12)).label_ids) == 12


def test_random_examples_hold_the_next_item_among_unseen_negatives() -> None:
    seqs = Sequences(user_ids=["u"], item_ids=[str(i) for i in range(1, 101)], histories=[list(range(1, 31))])
    for e in random_examples(seqs, training_prefixes(seqs, count=50, seed=0), num_candidates=20, seed=0):
        answer = e.candidates[e.answer]
        assert len(e.candidates) == len(set(e.candidates)) == 20
        assert answer == len(e.history) + 1 and answer <= 28  # from the training part only
        assert not set(e.candidates) - {answer} & set(range(1, answer + 1))


def test_candidate_examples_are_lrurecs_candidates_with_the_next_item_put_in() -> None:
    seqs = Sequences(user_ids=["u"], item_ids=[str(i) for i in range(1, 101)], histories=[list(range(1, 31))])
    prefixes = training_prefixes(seqs, count=40, seed=1)
    found = [[90 + j for j in range(5)] if n % 2 else [p.next_item, 91, 92, 93, 94] for n, p in enumerate(prefixes)]
    examples = candidate_examples(prefixes, [list(f) for f in found], seed=1)
    for n, (prefix, e) in enumerate(zip(prefixes, examples, strict=True)):
        assert e.candidates[e.answer] == prefix.next_item and e.history == prefix.history
        # A hit keeps LRURec's five; a miss gives up LRURec's last for the next item.
        assert set(e.candidates) == ({*found[n][:-1], prefix.next_item} if n % 2 else set(found[n]))
    # Shuffled: the answer's label says nothing of where LRURec put it.
    assert len({e.answer for e in examples}) > 1


def test_candidate_metrics_count_missed_targets_as_misses() -> None:
    from models.verbalizer.data import EvalCase

    cases = [EvalCase([1], [5, 6, 7], [3.0, 2.0, 1.0], 7), EvalCase([1], [5, 6, 7], [3.0, 2.0, 1.0], 9)]
    assert candidate_metrics(cases, [[2, 0, 1], [0, 1, 2]])["Recall@5"] == 0.5
    assert candidate_metrics(cases, [[2, 0, 1], [0, 1, 2]])["NDCG@5"] == 0.5
