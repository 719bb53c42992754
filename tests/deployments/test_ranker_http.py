"""The LLM ranker over real HTTP: one-call training, the adapter in the running vLLM engine, the verbalizer's
ranking checked against Hugging Face + peft, the adapter as an OpenAI model, fallback and failed runs."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest
import torch

from models.verbalizer.fusion_weight import SIGNIFICANCE
from models.verbalizer.prompts import Verbalizer, adapter_config
from models.verbalizer.scoring import label_logprobs
from tandem.settings import Settings
from tests.conftest import ADMIN_KEY, AUTH, active_artifact, deploy_ingress, wait_for_run
from tests.prometheus import total, wait_for

TINY_RANKER = {"pipeline": "ranker", "ranker": {"examples": 8, "eval_users": 8}}


@pytest.fixture(scope="module")
def ranker_run(http: httpx.Client, trained: dict, settings: Settings) -> dict:
    r = http.post("/v1/train", json=TINY_RANKER)
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    busy = http.post("/v1/train", json=TINY_RANKER)
    run = wait_for_run(http, run_id)
    assert run["status"] == "succeeded", run["error"]
    deadline = time.monotonic() + 60
    while f"{settings.llm_name}:ranker" not in [m["id"] for m in http.get("/v1/models").json()["data"]]:
        assert time.monotonic() < deadline, "the ranker adapter never reached the LLM deployment"
        time.sleep(0.5)
    return {**run, "busy": busy}


def test_train_runs_in_the_background_and_reports_progress_and_metrics(ranker_run: dict) -> None:
    assert ranker_run["busy"].status_code == 409 and "ranker" in ranker_run["busy"].json()["error"]["message"]
    assert ranker_run["progress"]["unit"] == "step" and ranker_run["progress"]["step"] == 2  # 8 examples, batch 4
    metrics = ranker_run["metrics"]
    test, fusion = metrics["test"], metrics["fusion"]
    assert test["users"] == fusion["val_users"] == 8
    assert set(test["lrurec"]) == set(test["llm"]) == set(test["fused"]) == {"NDCG@5", "Recall@5", "NDCG@10",
                                                                             "Recall@10"}
    # The weight is fitted on the validation users whose next item LRURec found; the LLM gets a share only when
    # it makes that item significantly more likely. Weight 0 is LRURec's order.
    assert 0 <= fusion["users"] <= 8 and set(fusion["val_ndcg_10"]) == {"lrurec", "llm", "fused"}
    assert fusion["weight"] == 0 or (fusion["lr_statistic"] >= SIGNIFICANCE and fusion["llm_scale"] > 0)
    if fusion["weight"] == 0:
        assert test["fused"] == test["lrurec"]
    # Trained on LRURec's candidates for each prefix (the true item put in where LRURec missed it).
    assert metrics["negatives"] == "lrurec"


def test_adapter_is_served_beside_the_base_model(serve_app: str, ranker_run: dict, settings: Settings) -> None:
    base, adapter = settings.llm_name, f"{settings.llm_name}:ranker"
    with openai.OpenAI(base_url=f"{serve_app}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
        assert [(m.id, m.parent) for m in client.models.list().data if m.id == adapter] == [(adapter, base)]
        asked = {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
        assert client.completions.create(model=base, **asked).model == base
        assert client.completions.create(model=adapter, **asked).model == adapter
        with pytest.raises(openai.NotFoundError) as missing:
            client.completions.create(model=f"{base}:nope", **asked)
        assert f"{base}:nope" in missing.value.message


def test_recommendations_are_the_verbalizer_ranking_of_lrurec_candidates(
    http: httpx.Client, ranker_run: dict, settings: Settings, pg_url: str
) -> None:
    r = http.post("/v1/recommendations", json={"user_id": "1", "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ordered_by"], body["fallback"], body["adapter"]) == ("fused", False, "ranker"), body
    assert body["fusion_weight"] == ranker_run["metrics"]["fusion"]["weight"]
    assert body["model_versions"]["ranker"] is not None and body["prompt_tokens"] > 0
    found = http.post("/v1/candidates", json={"user_id": "1", "k": settings.ranker_candidates,
                                              "include_history": settings.verbalizer_max_history}).json()
    pool = [c["item_id"] for c in found["candidates"]]
    assert [i["item_id"] for i in body["items"]] == [pool[i["lrurec_rank"]] for i in body["items"]]
    assert [i["lrurec_score"] for i in body["items"]] == [found["candidates"][i["lrurec_rank"]]["score"]
                                                         for i in body["items"]]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(i["llm_score"] < 0 for i in body["items"])

    assert_peft_ranking(body, found, settings, pg_url)


def test_the_served_order_fuses_lrurec_and_the_llm_at_the_tuned_weight(http: httpx.Client, ranker_run: dict,
                                                                        settings: Settings) -> None:
    """All 20 candidates: each score is LRURec's and the LLM's log-probability over the candidates, the LLM's at
    the adapter's weight, and the order follows it."""
    body = http.post("/v1/recommendations", json={"user_id": "2", "k": settings.ranker_candidates}).json()
    assert body["ordered_by"] == "fused" and len(body["items"]) == settings.ranker_candidates, body
    by_rank = sorted(body["items"], key=lambda i: i["lrurec_rank"])
    lrurec, llm = [i["lrurec_score"] for i in by_rank], [i["llm_score"] for i in by_rank]
    weight = body["fusion_weight"]

    def log_softmax(xs: list[float]) -> list[float]:
        top = max(xs)
        norm = top + math.log(sum(math.exp(x - top) for x in xs))
        return [x - norm for x in xs]

    expected = [a + weight * b for a, b in zip(log_softmax(lrurec), log_softmax(llm), strict=True)]
    assert [i["score"] for i in by_rank] == pytest.approx(expected, abs=1e-4)
    assert [i["lrurec_rank"] for i in body["items"]] == sorted(range(len(expected)), key=lambda i: -expected[i])


def assert_peft_ranking(body: dict, found: dict, settings: Settings, pg_url: str, int8: bool = False) -> None:
    """The same prompt through Hugging Face with the adapter applied by peft: the same label log-probabilities,
    within what bf16 keeps, or int8 weights and activations (benchmarks/int8_ranker.py: at most 0.84 from bf16 over
    300 users' 20 labels, 0.16 on average)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings.llm_path)
    model = AutoModelForCausalLM.from_pretrained(settings.llm_path, dtype=torch.float32)
    adapter = active_artifact(pg_url, "ranker")
    model = PeftModel.from_pretrained(model, adapter).eval()
    verbalizer = Verbalizer(tokenizer, adapter_config(adapter) or settings.verbalizer)
    prompt = verbalizer.prompt_ids([h["title"] for h in found["history"]], [c["title"] for c in found["candidates"]])
    (expected,) = label_logprobs(model, [prompt], verbalizer.label_ids, tokenizer.eos_token_id)
    served = {i["lrurec_rank"]: i["llm_score"] for i in body["items"]}
    gaps = [abs(served[i] - expected[i]) for i in served]
    if int8:
        assert max(gaps) < 1.0 and sum(gaps) / len(gaps) < 0.3, gaps
    else:
        assert max(gaps) < 0.3, gaps  # vLLM computes in bf16


def served_merged(http: httpx.Client) -> dict:
    """A recommendation once the merged ranker engine has taken over from the LoRA adapter."""
    deadline = time.monotonic() + 180
    while (body := http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json())[
            "adapter_served_as"] != "merged":
        assert body["adapter_served_as"] == "lora", body  # the LoRA adapter serves until the merged engine is up
        assert time.monotonic() < deadline, "the merged ranker engine never took over"
        time.sleep(2)
    return body


def test_on_cpu_the_ranker_is_served_merged_in_int8_with_the_same_ranking(
    http: httpx.Client, ranker_run: dict, settings: Settings, pg_url: str
) -> None:
    body = served_merged(http)
    assert body["model_versions"]["ranker"] == http.get("/readyz").json()["models"]["ranker"]
    # The merged copy the engine loaded: the active version's, its linear layers int8 (TANDEM_LLM_MERGED_INT8).
    stored = asyncio.run(_fetchval(pg_url, "SELECT coalesce(artifact_sha256, version) FROM model_versions "
                                           "WHERE pipeline = 'ranker' AND status = 'active'"))
    config = json.loads((settings.var_dir / "merged" / f"ranker-{stored}-int8" / "config.json").read_text())
    assert config["quantization_config"]["format"] == "int-quantized", config
    found = http.post("/v1/candidates", json={"user_id": "1", "k": settings.ranker_candidates,
                                              "include_history": settings.verbalizer_max_history}).json()
    assert_peft_ranking(body, found, settings, pg_url, int8=True)


def test_a_ranking_does_not_wait_for_long_generations(
    http: httpx.Client, serve_app: str, ranker_run: dict, settings: Settings
) -> None:
    """The merged ranker engine pauses the base engine's generations for its forward pass instead of waiting for
    them to end; they then finish their work."""
    served_merged(http)

    def generate() -> tuple[float, int]:
        with openai.OpenAI(base_url=f"{serve_app}/v1", api_key=ADMIN_KEY, max_retries=0) as client:
            done = client.completions.create(model=settings.llm_name, prompt="Once upon a time", max_tokens=150,
                                             temperature=0, extra_body={"ignore_eos": True})
        return time.monotonic(), done.usage.completion_tokens

    with ThreadPoolExecutor(4) as pool:
        generations = [pool.submit(generate) for _ in range(4)]
        time.sleep(2)  # they are decoding now
        body = http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json()
        ranked = time.monotonic()
        ended = [g.result() for g in generations]
    assert (body["adapter_served_as"], body["fallback"]) == ("merged", False), body
    assert [tokens for _, tokens in ended] == [150] * 4
    assert ranked < min(end for end, _ in ended), "the ranking waited for the generations to end"


def test_recommendation_errors_are_4xx(http: httpx.Client, ranker_run: dict) -> None:
    assert http.post("/v1/recommendations", json={"user_id": "no-such-user"}).status_code == 404
    for bad in ({"user_id": "1", "k": 0}, {"user_id": "1", "k": 27}, {"k": 5}):
        r = http.post("/v1/recommendations", json=bad)
        assert r.status_code == 422, (bad, r.text)


@pytest.fixture(scope="module")
def impatient(serve_app: str, settings: Settings) -> Iterator[str]:
    """A second ingress whose LLM stage has no time at all, sharing every deployment of the running app."""
    from ray import serve

    yield deploy_ingress(serve_app, "impatient", settings.model_copy(update={"ranker_timeout_s": 0.001}))
    serve.delete("impatient")


def test_llm_over_budget_falls_back_to_lrurec_order(http: httpx.Client, impatient: str, trained: dict) -> None:
    r = httpx.post(f"{impatient}/v1/recommendations", json={"user_id": "1", "k": 5}, timeout=60, headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["ordered_by"], body["fallback"]) == ("lrurec", True) and "budget" in body["fallback_reason"]
    pool = http.post("/v1/candidates", json={"user_id": "1", "k": 5}).json()["candidates"]
    assert [i["item_id"] for i in body["items"]] == [c["item_id"] for c in pool]


def test_new_users_and_items_are_served_after_one_retrain_call(http: httpx.Client, trained: dict) -> None:
    tag = uuid.uuid4().hex[:8]
    item, users = f"new-item-{tag}", [f"new-user-{tag}-{i}" for i in range(6)]
    assert http.post("/v1/items", json={"items": [{"external_id": item, "title": f"New Film {tag} (2026)"}]}).is_success
    assert http.post("/v1/users", json={"users": [{"external_id": u} for u in users]}).is_success
    old = ["1", "50", "110", "260", "296"]  # films every MovieLens model knows
    # The new item in the middle of each history, so that it is in the training part of the split.
    events = [{"user_id": u, "item_id": x, "timestamp": f"2030-01-0{d + 1}T00:00:00Z"}
              for u in users for d, x in enumerate([old[0], item, *old[1:5]])]
    assert http.post("/v1/interactions", json={"interactions": events}).is_success
    before = http.post("/v1/candidates", json={"history": [item], "k": 5}).json()
    assert before["fallback"] is True  # the model has never seen the new item

    r = http.post("/v1/train", json={"pipeline": "lrurec", "lrurec": {"max_epochs": 1, "shuffle_ties": False}})
    assert r.status_code == 202, r.text
    run = wait_for_run(http, r.json()["run_id"])
    assert run["status"] == "succeeded", run["error"]
    assert run["metrics"]["train"]["shuffle_ties"] is False and run["metrics"]["train"]["exclude_seen"] is True
    assert run["progress"]["unit"] == "epoch" and run["progress"]["step"] == 1
    deadline = time.monotonic() + 60
    while (after := http.post("/v1/candidates", json={"history": [item], "k": 5}).json())["fallback"]:
        assert time.monotonic() < deadline, "the retrained LRURec never reached the candidates deployment"
        time.sleep(0.5)
    assert after["model_version"] != before["model_version"]
    rec = http.post("/v1/recommendations", json={"user_id": users[0], "k": 3})
    assert rec.status_code == 200 and rec.json()["candidates_fallback"] is False


async def _fetchval(url: str, query: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _versions(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT pipeline, version, status FROM model_versions")
    finally:
        await conn.close()


@pytest.fixture
def empty_app(serve_app: str, settings: Settings, fresh_db: str) -> Iterator[str]:
    """An ingress and trainer over an empty database, sharing the running model deployments."""
    from ray import serve

    from deployments.servers.trainer import Trainer

    empty = settings.model_copy(update={"database_url": fresh_db})
    yield deploy_ingress(serve_app, "empty", empty, trainer=Trainer.options(name="EmptyTrainer").bind(empty))
    serve.delete("empty")


def test_a_failed_run_says_why_and_activates_nothing(empty_app: str, fresh_db: str) -> None:
    with httpx.Client(base_url=empty_app, timeout=60, headers=AUTH) as client:
        r = client.post("/v1/train", json={"pipeline": "all"})
        assert r.status_code == 202, r.text
        lrurec, ranker = r.json()["runs"]
        assert (lrurec["pipeline"], ranker["pipeline"]) == ("lrurec", "ranker")
        failed = wait_for_run(client, lrurec["id"], timeout_s=120)
        assert failed["status"] == "failed" and "no user has 5 interactions" in failed["error"]
        skipped = wait_for_run(client, ranker["id"], timeout_s=30)
        assert skipped["status"] == "failed" and skipped["error"].startswith("not run: lrurec")
        assert asyncio.run(_versions(fresh_db)) == [], "a failed run registered a model version"
        assert client.get("/v1/train/999999").status_code == 404
        assert client.post("/v1/train", json={"pipeline": "bert"}).status_code == 422
        bad = client.post("/v1/train", json={"pipeline": "lrurec", "lrurec": {"exclude_seen": "maybe"}})
        assert bad.status_code == 422 and "exclude_seen" in bad.text, bad.text


def reweigh(adapter: Path, factor: float) -> None:
    """Scale the adapter's update (its LoRA B matrices): a negative factor turns its preferences around."""
    from safetensors.torch import load_file, save_file

    weights = adapter / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file({name: t * factor if "lora_B" in name else t for name, t in tensors.items()}, weights)


async def register_copy(pg_url: str, artifact: Path, version: str, metrics: dict) -> None:
    """A version registered and activated as a finished training run registers it."""
    from db import registry

    conn = await asyncpg.connect(pg_url)
    try:
        run_id = await registry.start_run(conn, "ranker", {"copy_of": str(artifact)})
        await registry.finish_run(conn, run_id, "ranker", version, artifact, metrics)
    finally:
        await conn.close()


def test_a_broken_adapter_leaves_the_old_one_serving(http: httpx.Client, ranker_run: dict, pg_url: str,
                                                      metrics_url: str, tmp_path: Path) -> None:
    import shutil

    from db import registry

    serving = http.get("/readyz").json()["models"]["ranker"]
    broken = tmp_path / "broken"
    shutil.copytree(active_artifact(pg_url, "ranker"), broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not a tensor file")
    version = f"broken-{uuid.uuid4().hex[:8]}"
    asyncio.run(register_copy(pg_url, broken, version, json.loads((broken / "metrics.json").read_text())))
    try:
        failed = wait_for(metrics_url, lambda samples: total(
            samples, "ray_tandem_model_load_failures_total", pipeline="ranker", version=version) >= 1)
        assert total(failed, "ray_tandem_model_load_failures_total", pipeline="ranker", version=version) >= 1
        body = http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json()
        assert (body["ordered_by"], body["model_versions"]["ranker"]) == ("fused", serving), body
        assert http.get("/readyz").json()["models"]["ranker"] == serving
    finally:
        async def restore() -> None:
            conn = await asyncpg.connect(pg_url)
            try:
                await registry.activate(conn, "ranker", serving)
            finally:
                await conn.close()

        asyncio.run(restore())


def test_a_new_adapter_version_is_swapped_in_without_failing_requests(
    http: httpx.Client, ranker_run: dict, pg_url: str, settings: Settings, tmp_path
) -> None:
    """The new version was trained on the other prompt layout: from the swap on it is served with its own."""
    import shutil
    import threading

    copy = tmp_path / "ranker-copy"
    shutil.copytree(active_artifact(pg_url, "ranker"), copy)
    reweigh(copy, -2.0)
    metrics = json.loads((copy / "metrics.json").read_text())
    layout = {"llamarec": "compact", "compact": "llamarec"}[metrics["verbalizer"]["layout"]]
    metrics["verbalizer"]["layout"] = layout
    (copy / "metrics.json").write_text(json.dumps(metrics))
    before = http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json()
    version = f"copy-{uuid.uuid4().hex[:8]}"
    outcomes: list[tuple[int, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=120, headers=AUTH) as c:
            while not stop.is_set():
                r = c.post("/v1/recommendations", json={"user_id": "2", "k": 3})
                outcomes.append((r.status_code, r.json().get("ordered_by")))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        asyncio.run(register_copy(pg_url, copy, version, metrics))
        deadline = time.monotonic() + 120
        while http.get("/readyz").json()["models"].get("ranker") != version:
            assert time.monotonic() < deadline, "the new adapter version never became active"
            time.sleep(0.5)
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert outcomes and set(outcomes) == {(200, "fused")}, set(outcomes)
    served = http.post("/v1/recommendations", json={"user_id": "1", "k": 5}).json()
    assert served["model_versions"]["ranker"] == version
    # The new weights and prompt score the candidates anew (the order may not move: at a fusion weight of 0 it is
    # LRURec's).
    assert [i["llm_score"] for i in served["items"]] != [i["llm_score"] for i in before["items"]], (served, before)
    shorter = served["prompt_tokens"] / before["prompt_tokens"]
    assert shorter < 0.85 if layout == "compact" else shorter > 1.15, (layout, served, before)
    found = http.post("/v1/candidates", json={"user_id": "1", "k": settings.ranker_candidates,
                                              "include_history": settings.verbalizer_max_history}).json()
    assert_peft_ranking(served, found, settings, pg_url)
