"""The local model assets are real HF folders of the production architectures."""

import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from ops.assets import STAMP, build_assets
from tandem.settings import Settings

KOREAN = "이사화물 통관예약을 하면 뭐가 좋나요?"


def test_llm_folder_is_plain_safetensors_with_chat_template(base_settings: Settings) -> None:
    folder = Path(base_settings.llm_path)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config, "vLLM would try to load GGUF quantisation"
    assert config["head_dim"] == 64  # vLLM's CPU attention rejects smaller heads
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>" in chat and chat.endswith("<|im_start|>assistant\n")


def test_small_bert_encodes_korean(base_settings: Settings) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_settings.bert_path)
    model = AutoModel.from_pretrained(base_settings.bert_path)
    assert type(model).__name__ == "BertModel"
    ids = tokenizer(KOREAN)["input_ids"]
    assert tokenizer.unk_token_id not in ids, "a tokenizer trained on Korean text knows Korean"
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == KOREAN.replace(" ", "")
    out = model(**tokenizer([KOREAN, "customs"], padding=True, return_tensors="pt"))
    assert out.pooler_output.shape == (2, AutoConfig.from_pretrained(base_settings.bert_path).hidden_size)


def test_small_bart_generates_and_round_trips_korean(base_settings: Settings) -> None:
    tokenizer = AutoTokenizer.from_pretrained(base_settings.bart_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(base_settings.bart_path)
    assert type(model).__name__ == "BartForConditionalGeneration"
    enc = tokenizer(KOREAN, return_tensors="pt")
    assert tokenizer.unk_token_id not in enc["input_ids"][0].tolist()
    assert tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True) == KOREAN
    out = model.generate(**enc, max_new_tokens=5, num_beams=2)
    assert out.shape[0] == 1 and out.shape[1] <= 7
    labels = tokenizer("이사화물, 통관", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(**enc, labels=labels).loss)


def test_second_build_reuses_every_folder(base_settings: Settings) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in base_settings.models_dir.glob(f"*/{STAMP}")}
    assert len(stamps) == 3
    build_assets(base_settings)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
