"""The seed projects' way of serving, as the baseline of benchmarks/baselines.py: one Flask worker calling
Hugging Face models one request at a time (GemmaRecAPI's recommender, the customs chatbot's QA).

Same models, prompts and database as the stack: the active LRURec, the SmolLM2 folder with the active `ranker`
and `qa` adapters (peft), the active DPR encoder and FAISS index with BM25 fused in, the user's history read
from PostgreSQL per request. Nothing is batched and nothing overlaps.

    .venv/bin/python benchmarks/flask_baseline.py --port 8001      # the stack's database, as `tandem` finds it
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import asyncpg
import torch
from flask import Flask, jsonify, request
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from db import registry
from db.interactions import user_history
from db.passages import passages
from db.server import database_url
from models.dpr.retriever import Passage, Retriever, load_dense
from models.lrurec.checkpoint import Checkpoint
from models.lrurec.recommender import Recommender
from models.qa.prompts import Context, QAPrompter
from models.verbalizer.fusion import order_by
from models.verbalizer.prompts import Verbalizer, adapter_config
from models.verbalizer.scoring import label_logprobs
from tandem.artifacts import local_version, node_cache
from tandem.settings import Settings
from training.retrieval import INDEX


async def _load_state(settings: Settings, url: str) -> tuple[dict, dict[str, str], list[Passage]]:
    conn = await asyncpg.connect(url)
    try:
        versions = {v: await registry.active_version(conn, v) for v in ("lrurec", "ranker", "qa", INDEX)}
        versions = {v: version and await local_version(version, node_cache(settings), conn)
                    for v, version in versions.items()}
        titles = {r["external_id"]: r["title"] for r in await conn.fetch("SELECT external_id, title FROM items")}
        collection = [Passage(**r) for r in await passages(conn)]
    finally:
        await conn.close()
    return versions, titles, collection


async def _history(url: str, user_id: str) -> list[str]:
    # A connection per request, as the seed's Flask handlers did.
    conn = await asyncpg.connect(url)
    try:
        return [i.item_id for i in await user_history(conn, user_id)]
    finally:
        await conn.close()


def build_app(settings: Settings, url: str) -> Flask:
    versions, titles, collection = asyncio.run(_load_state(settings, url))
    if versions["lrurec"] is None or versions[INDEX] is None:
        raise LookupError("the baseline needs an active LRURec and retrieval index (tandem train lrurec, train dpr)")
    tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
    model = AutoModelForCausalLM.from_pretrained(settings.llm_path, dtype=torch.bfloat16).eval()
    adapters = {name: v.artifact_path for name in ("ranker", "qa") if (v := versions[name]) is not None}
    if adapters:
        first, *rest = adapters
        model = PeftModel.from_pretrained(model, adapters[first], adapter_name=first).eval()
        for name in rest:
            model.load_adapter(adapters[name], adapter_name=name)
    recommender = Recommender(Checkpoint.load(Path(versions["lrurec"].artifact_path)))
    ranker = adapters.get("ranker")
    verbalizer = Verbalizer(tokenizer, (adapter_config(ranker) if ranker else None) or settings.verbalizer)
    retriever = Retriever([], load_dense(Path(versions[INDEX].artifact_path)),
                          **settings.retriever_fusion).with_collection(collection)
    prompter = QAPrompter(tokenizer, settings.qa_max_context_tokens)
    app = Flask("tandem-baseline")

    def adapter(name: str):
        if name in adapters:
            model.set_adapter(name)
            return torch.inference_mode()
        return model.disable_adapter() if adapters else torch.inference_mode()

    @app.post("/v1/recommendations")
    def recommendations():
        body = request.get_json()
        history = asyncio.run(_history(url, str(body["user_id"])))
        ranked = recommender.rank([history], [settings.ranker_candidates])[0]
        shown = [titles.get(i, i) for i in history[-settings.verbalizer_max_history:]]
        prompt = verbalizer.prompt_ids(shown, [titles.get(i, i) for i in ranked.item_ids])
        with adapter("ranker"), torch.inference_mode():
            (scores,) = label_logprobs(model, [prompt], verbalizer.label_ids[: len(ranked.item_ids)],
                                       tokenizer.eos_token_id)
        order = order_by(scores)
        return jsonify({"items": [{"item_id": ranked.item_ids[i], "score": scores[i]}
                                  for i in order[: int(body.get("k", 10))]]})

    @app.post("/v1/qa")
    def qa():
        body = request.get_json()
        hits = retriever.search([body["question"]], top_k=int(body.get("top_k", 3)), mode="hybrid")[0]
        prompt, used = prompter.prompt_ids(body["question"], [Context(h.passage.text, h.passage.source)
                                                              for h in hits])
        with adapter("qa"), torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=int(body.get("max_tokens", 256)),
                                 do_sample=False, pad_token_id=tokenizer.eos_token_id)
        answer = tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)
        return jsonify({"answer": answer.strip(), "passages_used": used})

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    settings = Settings()
    with database_url(settings.database_url, settings.pgdata_dir) as url:
        # One worker, one request at a time: the seed projects' `app.run()`.
        build_app(settings, url).run(host="127.0.0.1", port=args.port, threaded=False, processes=1)
