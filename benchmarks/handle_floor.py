"""What a Serve handle call costs on this machine: a deployment that does nothing, called as candidates.py and
retrieval.py call theirs (same closed loop, same process layout), at concurrency 1, 8 and 32; with and without
`@serve.batch`. Its calls/s bound what any deployment behind a handle can answer here.

    .venv/bin/python benchmarks/handle_floor.py
"""

from __future__ import annotations

import argparse
import asyncio
import json

from closed_loop import measure
from ray import serve


@serve.deployment(max_ongoing_requests=128)
class Nothing:
    async def call(self, key: str) -> str:
        return key


@serve.deployment(max_ongoing_requests=128)
class NothingBatched:
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def batch(self, keys: list[str]) -> list[str]:
        return keys

    async def call(self, key: str) -> str:
        return await self.batch(key)


def main() -> None:
    import ray

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=800)
    args = p.parse_args()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        handles = {name: serve.run(d.options(ray_actor_options={"num_cpus": 0}).bind(), name=name, route_prefix=None)
                   for name, d in (("nothing", Nothing), ("nothing_batched", NothingBatched))}

        async def run() -> dict:
            table = {}
            for name, handle in handles.items():
                async def call(key: str, handle=handle) -> None:
                    await handle.call.remote(key)

                for concurrency in (1, 8, 32):
                    n = args.requests if concurrency > 1 else args.requests // 4
                    table[f"{name}@{concurrency}"] = await measure(call, [str(i) for i in range(1000)],
                                                                   concurrency, n, "calls")
            return table

        print(json.dumps(asyncio.run(run()), indent=2))
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
