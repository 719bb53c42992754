"""How close ranking comes to what the machine can compute, in one run: the bf16 matrix-product peak (large products
and the LLM's own shapes), the vLLM engine alone on distinct ranking prompts, and the whole stack's
/v1/recommendations at 1, 8 and 32 clients; each as rankings/s and as a fraction of the ceiling, where a ranking
costs 2 x parameters x prompt tokens.

Run it with the stack up and idle (MovieLens, an active LRURec and ranker, LLM budgets long enough for 32 clients):

    TANDEM_RANKER_TIMEOUT_S=600 make run
    .venv/bin/python benchmarks/ceiling.py --seconds 30

The engine-alone phase builds its own engine in this process with the stack's LLM settings (TANDEM_*), on the
cores `llm_cpu_cores` gives it, while the stack's engine idles. Prompts are the verbalizer's, from random MovieLens
histories and candidate pools, all distinct: no prefix cache flatters the figure beyond the shared instruction.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

from ops.loadtest import Step, load, scrape, summary, total, workloads
from tandem.settings import Settings


def matmul_tflops(m: int, k: int, n: int, threads: int, seconds: float = 2.0) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
    return per_second(lambda: a @ b, seconds) * 2 * m * k * n / 1e12


def per_second(product, seconds: float) -> float:
    """How many times a second `product` runs, once warmed."""
    product()
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        product()
        reps += 1
    return reps / (time.perf_counter() - started)


def int8_matmul_tops(m: int, k: int, n: int, threads: int, seconds: float = 2.0) -> float:
    """A product as vLLM's int8 linear layers compute it on CPU (oneDNN): the bf16 activations quantized per token
    at run time, int8 weights per output channel, bf16 out; counted as 2 x m x k x n operations."""
    import torch
    from vllm import _custom_ops as ops

    torch.set_num_threads(threads)
    a = torch.randn(m, k, dtype=torch.bfloat16)
    weight = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    handler = ops.create_onednn_scaled_mm(weight.t(), torch.full((n, 1), 1e-3), torch.bfloat16, True, False, 32)
    out = torch.empty(m, n, dtype=torch.bfloat16)

    def product() -> None:
        q, scale, _ = ops.onednn_scaled_int8_quant(a, None, None, True)
        ops.onednn_scaled_mm(handler, q, out, scale, None, None, None)

    return per_second(product, seconds) * 2 * m * k * n / 1e12


def model_shapes(config) -> dict[str, tuple[int, int]]:
    """(in, out) of the products every layer computes per token."""
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    h, inter = config.hidden_size, config.intermediate_size
    return {"qkv": (h, (heads + 2 * kv) * head_dim), "o": (heads * head_dim, h), "gate_up": (h, 2 * inter),
            "down": (inter, h)}


def parameters(folder: str) -> int:
    from safetensors import safe_open

    count = 0
    for file in Path(folder).glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            count += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return count


def ranking_prompts(settings: Settings, n: int, seed: int = 0, adapter: Path | None = None,
                    ) -> tuple[list[list[int]], list[int]]:
    """Distinct ranking prompts of random MovieLens titles, in the prompt `adapter` was trained on."""
    from transformers import AutoTokenizer

    from models.verbalizer.prompts import Verbalizer, adapter_config

    cfg = (adapter_config(adapter) if adapter else None) or settings.verbalizer
    verbalizer = Verbalizer(AutoTokenizer.from_pretrained(settings.llm_path), cfg)
    with open(settings.data_dir / "ml-latest-small" / "movies.csv", encoding="utf-8") as f:
        titles = [row["title"] for row in csv.DictReader(f)]
    rng = random.Random(seed)
    prompts = [verbalizer.prompt_ids(rng.sample(titles, settings.verbalizer_max_history),
                                     rng.sample(titles, settings.ranker_candidates)) for _ in range(n)]
    return prompts, verbalizer.label_ids[: settings.ranker_candidates]


def engine_alone(settings: Settings, concurrency: list[int], per_level: int, adapter: Path | None = None,
                 merged: Path | None = None) -> dict:
    """`adapter`: rank through that LoRA adapter, or, given `merged`, through that merged copy of it (the stack
    writes them to var/merged/<pipeline>-<sha256>[-int8]); neither: the base model."""
    from deployments.servers.engine_placement import cpu_threads_env
    from deployments.servers.llm_engine import LLMEngine

    prompts, labels = ranking_prompts(settings, 4 + per_level * len(concurrency), adapter=adapter)
    if adapter is not None and merged is not None:
        settings = settings.model_copy(update={"llm_model": str(merged)})
    engine = LLMEngine(settings, ray_metrics=False, lora=adapter is not None and merged is None)
    lora = None

    async def level(batch: list[list[int]], clients: int) -> dict:
        queue, latencies = list(batch), []

        async def client() -> None:
            while queue:
                prompt = queue.pop()
                started = time.monotonic()
                await engine.label_logprobs(prompt, labels, lora)
                latencies.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        return {"rankings_per_s": round(len(batch) / (time.monotonic() - started), 3),
                "p50_ms": round(statistics.median(latencies) * 1000, 1)}

    async def run() -> dict:
        nonlocal lora
        if adapter is not None and merged is None:
            await engine.load_adapter("ranker", str(adapter))
            lora = engine.adapters["ranker"]
        for prompt in prompts[:4]:  # warm-up
            await engine.label_logprobs(prompt, labels, lora)
        results = {}
        for i, clients in enumerate(concurrency):
            results[clients] = await level(prompts[4 + i * per_level: 4 + (i + 1) * per_level], clients)
        return results

    try:
        results = asyncio.run(run())
    finally:
        engine.shutdown()
    tokens = statistics.mean(len(p) for p in prompts)
    return {"cores": cpu_threads_env(settings).get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
            "prompt_tokens": round(tokens, 1), "levels": results}


def moved(before: list, after: list, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def stack(url: str, metrics_url: str, data_dir: Path, concurrency: list[int], seconds: float) -> dict:
    workload = workloads(data_dir)["recommendations"]
    results = {}
    for clients in concurrency:
        before = scrape(metrics_url)
        steps = [Step(level=clients, seconds=seconds)]
        run = asyncio.run(load(url, workload, steps, closed=True, max_requests=100_000, timeout_s=900, seed=clients))
        time.sleep(12)  # Ray exports metrics every few seconds
        after = scrape(metrics_url)
        ranks = moved(before, after, "ray_tandem_llm_requests_total", kind="rank", outcome="ok")
        tokens = moved(before, after, "ray_tandem_llm_tokens_total", kind="rank", direction="prompt")
        row = {k: v for k, v in summary(run, steps).items() if k != "steps"}
        row["prompt_tokens"] = round(tokens / ranks, 1) if ranks else None
        row["ranking_fallbacks"] = moved(before, after, "ray_tandem_fallbacks_total", pipeline="recommendation",
                                         stage="ranking")
        results[clients] = row
        print(json.dumps({"stack": clients, **row}), file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per level of the stack phase")
    parser.add_argument("--prompts", type=int, default=48, help="per level of the engine phase")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--metrics", default="http://127.0.0.1:8080/metrics")
    parser.add_argument("--skip-stack", action="store_true", help="only the products and the engine alone")
    parser.add_argument("--adapter", type=Path, help="the engine alone ranks through this LoRA adapter folder")
    parser.add_argument("--merged", type=Path, help="with --adapter: through this merged copy of it instead")
    args = parser.parse_args()
    settings = Settings()
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(settings.llm_path)
    cores = len(os.sched_getaffinity(0))
    peak = {"4096^3": round(matmul_tflops(4096, 4096, 4096, cores), 3)}
    for tokens in (512, 2048):
        for name, (k, n) in model_shapes(config).items():
            peak[f"{name} {tokens}x{k}x{n}"] = round(matmul_tflops(tokens, k, n, cores), 3)
    ceiling = max(peak.values())
    # What a merged ranker's int8 layers reach (TANDEM_LLM_MERGED_INT8); the fractions stay against bf16.
    int8 = {f"{name} {tokens}x{k}x{n}": round(int8_matmul_tops(tokens, k, n, cores), 3)
            for tokens in (512, 2048) for name, (k, n) in model_shapes(config).items()}
    params = parameters(settings.llm_path)
    print(json.dumps({"matmul_tflops": peak, "int8_matmul_tops": int8}), file=sys.stderr)

    def fraction(rankings_per_s: float | None, tokens: float | None) -> float | None:
        if not rankings_per_s or not tokens:
            return None
        return round(2 * params * tokens * rankings_per_s / 1e12 / ceiling, 3)

    alone = engine_alone(settings, args.concurrency, args.prompts, args.adapter, args.merged)
    for row in alone["levels"].values():
        row["fraction_of_ceiling"] = fraction(row["rankings_per_s"], alone["prompt_tokens"])
    print(json.dumps({"engine_alone": alone}), file=sys.stderr)
    result = {"date": time.strftime("%Y-%m-%d"), "cores": cores, "parameters": params,
              "ceiling_tflops": ceiling, "matmul_tflops": peak, "int8_matmul_tops": int8, "engine_alone": alone}
    if not args.skip_stack:
        served = stack(args.tandem, args.metrics, settings.data_dir, args.concurrency, args.seconds)
        for row in served.values():
            row["fraction_of_ceiling"] = fraction(row["answered_per_s"], row["prompt_tokens"])
        result["stack"] = served
    print(json.dumps(result))


if __name__ == "__main__":
    main()
