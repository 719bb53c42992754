"""/v1/keywords's deployment: texts per second and p50/p99 at concurrency 1, 8 and 32, one batched beam search
for many requests (@serve.batch) against one `generate` per request, the seed's one-at-a-time Flask server.

Needs keyword pairs and an active keyword model in the database:

    .venv/bin/tandem db import-keywords && .venv/bin/tandem train kobart
    .venv/bin/python benchmarks/keywords.py

Both variants are the real `KeywordServer` deployment serving the same model version, called through Serve
handles in one run, alternating; "unbatched" has max_batch_size = 1. Each request carries one KorQuAD
question.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from closed_loop import compare, deployments

from db.server import database_url
from deployments.protocol.keywords import KeywordsRequest
from deployments.protocol.service_error import ServiceError
from deployments.servers.keywords import KeywordServer
from tandem.settings import Settings
from training.keywords import SILVER, read_pairs


def keywords_call(handle):
    async def call(question: str) -> None:
        result = await handle.extract.remote(KeywordsRequest(text=question))
        assert not isinstance(result, ServiceError), result
        assert result.model == "kobart", "no keyword model is active: run `tandem train kobart`"

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    base = Settings()
    with database_url(base.database_url, base.pgdata_dir) as url:
        settings = base.model_copy(update={"database_url": url})
        questions = [q for q, _, source in read_pairs(url) if source == SILVER]
        unbatched = settings.model_copy(update={"keywords_max_batch_size": 1})
        with deployments({"batched": (KeywordServer, settings), "unbatched": (KeywordServer, unbatched)}) as handles:
            calls = {name: keywords_call(handle) for name, handle in handles.items()}
            print(json.dumps(asyncio.run(compare(calls, questions, args.requests, args.repeats, "texts",
                                                 baseline="unbatched")), indent=2))


if __name__ == "__main__":
    main()
