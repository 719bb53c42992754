"""Artifacts in a store every node reaches (the database, or an fsspec URL) and each node's cache of them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from db import artifact_chunks, connect
from tandem.artifacts import Artifact, ArtifactCache, ArtifactError, pack, upload


def model_folder(root: Path, weights: bytes = b"\x00\x01" * 5000) -> Path:
    folder = root / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(weights)
    (folder / "sub" / "config.json").write_text('{"hidden": 32}')
    return folder


def same_files(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_the_same_files_pack_to_the_same_hash_and_other_files_do_not(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    first = pack(folder, tmp_path / "a.tar")
    os.utime(folder / "weights.bin", (1, 1))
    assert pack(folder, tmp_path / "b.tar") == first
    (folder / "sub" / "config.json").write_text('{"hidden": 64}')
    assert pack(folder, tmp_path / "c.tar")[0] != first[0]
    assert first[1] == (tmp_path / "a.tar").stat().st_size


def test_an_artifact_in_the_database_is_written_with_its_transaction_and_fetched_intact(
        fresh_db: str, tmp_path: Path) -> None:
    folder = model_folder(tmp_path, weights=os.urandom(artifact_chunks.CHUNK_BYTES + 1000))  # two chunks
    cache = ArtifactCache(tmp_path / "cache", max_bytes=1 << 30)

    async def scenario() -> tuple[Artifact, Path]:
        async with connect(fresh_db) as conn:
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    rolled_back = await upload(conn, folder, None, tmp_path / "scratch")
                    raise RuntimeError("registration failed after the upload")
            assert not await artifact_chunks.stored(conn, rolled_back.sha256)
            async with conn.transaction():
                artifact = await upload(conn, folder, None, tmp_path / "scratch")
            assert await conn.fetchval("SELECT count(*) FROM artifact_chunks WHERE sha256 = $1", artifact.sha256) == 2
            return artifact, await cache.fetch(artifact, conn)

    artifact, fetched = asyncio.run(scenario())
    assert artifact.url == "postgres" and same_files(folder, fetched)
    assert not list((tmp_path / "scratch").iterdir())  # no packed tar left behind


def test_an_altered_cached_file_is_fetched_again(fresh_db: str, tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    cache = ArtifactCache(tmp_path / "cache", max_bytes=1 << 30)

    async def scenario() -> None:
        async with connect(fresh_db) as conn:
            async with conn.transaction():
                artifact = await upload(conn, folder, None, tmp_path / "scratch")
            fetched = await cache.fetch(artifact, conn)
            (fetched / "weights.bin").write_bytes(b"not the weights")
            again = await cache.fetch(artifact, conn)
            assert again == fetched and same_files(folder, again)
            (again / "sub" / "config.json").unlink()
            assert same_files(folder, await cache.fetch(artifact, conn))

    asyncio.run(scenario())


def test_an_object_store_by_url_and_bytes_that_do_not_match_their_hash(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    store = f"file://{tmp_path / 'bucket'}"
    (tmp_path / "bucket").mkdir()
    cache = ArtifactCache(tmp_path / "cache", max_bytes=1 << 30)

    async def scenario() -> None:
        artifact = await upload(None, folder, store, tmp_path / "scratch")
        assert artifact.url == f"{store}/{artifact.sha256}.tar"
        assert [p.name for p in (tmp_path / "bucket").iterdir()] == [f"{artifact.sha256}.tar"]
        assert same_files(folder, await cache.fetch(artifact, None))

        other = artifact.model_copy(update={"sha256": "0" * 64})
        with pytest.raises(ArtifactError, match="does not match its hash"):
            await cache.fetch(other, None)
        missing = artifact.model_copy(update={"url": f"{store}/gone.tar", "sha256": "1" * 64})
        with pytest.raises(ArtifactError, match="missing"):
            await cache.fetch(missing, None)
        assert not (cache.folder / ("0" * 64)).exists()

    asyncio.run(scenario())


def test_the_cache_keeps_to_its_bound_least_recently_used_out_first(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'bucket'}"
    (tmp_path / "bucket").mkdir()

    async def scenario() -> list[Artifact]:
        made = []
        for i in range(3):
            made.append(await upload(None, model_folder(tmp_path / str(i), weights=bytes([i]) * 10_000), store,
                                     tmp_path / "scratch"))
        return made

    first, second, third = asyncio.run(scenario())
    cache = ArtifactCache(tmp_path / "cache", max_bytes=25_000)  # room for two of the three
    asyncio.run(cache.fetch(first, None))
    asyncio.run(cache.fetch(second, None))
    asyncio.run(cache.fetch(first, None))  # first is now the more recently used
    asyncio.run(cache.fetch(third, None))
    assert {sha for sha, _, _ in cache.entries()} == {first.sha256, third.sha256}
    assert not (cache.folder / second.sha256).exists()
