"""Model artifacts every node can load: a version's folder packed into one tar, kept by its SHA-256 in a store that
every node reaches, and fetched into a bounded cache on each node.

The store is the database (`artifact_url` 'postgres', chunks in `artifact_chunks`) unless `TANDEM_ARTIFACT_URL`
names an object store (`s3://bucket/prefix`, `gs://…`, `file:///shared/…`, through fsspec). Each node's cache holds
unpacked folders by hash, each with a manifest of its files' hashes: a copy is checked against its manifest before
it is used, so a file altered on disk is noticed and the artifact fetched again; least recently used copies go
when the cache is over its bound.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tarfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from pydantic import BaseModel

from db import artifact_chunks, registry
from db.registry import Artifact, ModelVersion
from tandem.settings import Settings

log = logging.getLogger("tandem.artifacts")

DATABASE = "postgres"  # the artifact_url of an artifact kept in the database
READ_BYTES = artifact_chunks.CHUNK_BYTES


class ArtifactError(RuntimeError):
    """An artifact that cannot be had: missing from its store, or not the bytes its hash names."""


class _HashingWriter:
    def __init__(self, raw):
        self.raw, self.hash, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.raw.write(data)


def pack(folder: Path, into: Path) -> tuple[str, int]:
    """Write `folder` as a tar to `into`; returns its SHA-256 and size. Entries are sorted and carry no times or
    owners, so the same files always make the same bytes (and a retrained, identical model the same hash)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"artifact folder {folder} does not exist")
    with open(into, "wb") as raw:
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(folder.rglob("*")):
                if path.is_symlink():
                    raise ValueError(f"artifact {folder} holds a symlink ({path}); copy the file instead")
                info = tar.gettarinfo(path, arcname=path.relative_to(folder).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return writer.hash.hexdigest(), writer.size


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while data := f.read(READ_BYTES):
            yield data


def _fs(url: str):
    import fsspec

    return fsspec.core.url_to_fs(url)


async def upload(conn: asyncpg.Connection, folder: Path, store_url: str | None, scratch: Path) -> Artifact:
    """Put `folder` in the store: the database's chunk table when `store_url` is None (call it inside the
    transaction that registers the version), else `<store_url>/<sha256>.tar` written under a temporary name and
    renamed, so that a reader never sees half an object."""
    scratch.mkdir(parents=True, exist_ok=True)
    tar_path = scratch / f"upload-{uuid.uuid4().hex}.tar"
    try:
        sha256, size = await asyncio.to_thread(pack, folder, tar_path)
        if store_url is None:
            await artifact_chunks.put(conn, sha256, _chunks(tar_path))
            return Artifact(sha256=sha256, size=size, url=DATABASE)
        url = f"{store_url.rstrip('/')}/{sha256}.tar"
        await asyncio.to_thread(_put_object, tar_path, url)
        return Artifact(sha256=sha256, size=size, url=url)
    finally:
        tar_path.unlink(missing_ok=True)


def _put_object(tar_path: Path, url: str) -> None:
    fs, path = _fs(url)
    if fs.exists(path):
        return
    partial = f"{path}.partial-{uuid.uuid4().hex}"
    fs.put_file(str(tar_path), partial)
    fs.mv(partial, path)


async def _download(conn: asyncpg.Connection | None, artifact: Artifact, into: Path) -> None:
    """Fetch the artifact's tar to `into` and check that its bytes are the ones its hash names."""
    digest, size = hashlib.sha256(), 0
    with open(into, "wb") as out:
        def take(data: bytes) -> None:
            nonlocal size
            digest.update(data)
            size += len(data)
            out.write(data)

        if artifact.url == DATABASE:
            if conn is None:
                raise ArtifactError("an artifact kept in the database needs a database connection to fetch")
            async for data in artifact_chunks.read(conn, artifact.sha256):
                take(data)
        else:
            def copy() -> None:
                fs, path = _fs(artifact.url)
                with fs.open(path, "rb") as f:
                    while data := f.read(READ_BYTES):
                        take(data)

            try:
                await asyncio.to_thread(copy)
            except FileNotFoundError as exc:
                raise ArtifactError(f"artifact {artifact.url} is missing from its store") from exc
    if size == 0 and artifact.size > 0:
        raise ArtifactError(f"artifact {artifact.sha256} is missing from its store ({artifact.url})")
    if digest.hexdigest() != artifact.sha256 or size != artifact.size:
        raise ArtifactError(f"artifact {artifact.url} ({size} bytes) does not match its hash {artifact.sha256} "
                            f"({artifact.size} bytes): the store holds other bytes")


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(READ_BYTES):
            h.update(data)
    return h.hexdigest()


def _manifest_of(folder: Path) -> dict[str, list]:
    return {p.relative_to(folder).as_posix(): [p.stat().st_size, _hash_file(p)]
            for p in sorted(folder.rglob("*")) if p.is_file()}


class ArtifactCache:
    """Unpacked artifacts on this node, by hash, at most `max_bytes` of them (least recently used out first; the
    one just asked for always stays). Processes of one node share it: a file lock per hash lets one fetch while
    the others wait for its result."""

    def __init__(self, folder: Path, max_bytes: int):
        self.folder, self.max_bytes = folder, max_bytes

    def _paths(self, sha256: str) -> tuple[Path, Path]:
        return self.folder / sha256, self.folder / f"{sha256}.manifest.json"

    @asynccontextmanager
    async def _locked(self, sha256: str) -> AsyncIterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{sha256}.lock", "w") as lock:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _intact(self, sha256: str) -> bool:
        folder, manifest = self._paths(sha256)
        if not (folder.is_dir() and manifest.is_file()):
            return False
        expected = json.loads(manifest.read_text())
        if _manifest_of(folder) == expected:
            return True
        log.warning("cached artifact altered on disk; fetching it again", extra={"sha256": sha256})
        return False

    async def fetch(self, artifact: Artifact, conn: asyncpg.Connection | None) -> Path:
        """The artifact's folder on this node: the cached copy if it is intact, else fetched and checked."""
        folder, manifest = self._paths(artifact.sha256)
        async with self._locked(artifact.sha256):
            if not await asyncio.to_thread(self._intact, artifact.sha256):
                manifest.unlink(missing_ok=True)
                await asyncio.to_thread(shutil.rmtree, folder, True)
                started = time.monotonic()
                tar_path = self.folder / f"{artifact.sha256}.tar.partial"
                try:
                    await _download(conn, artifact, tar_path)
                    await asyncio.to_thread(self._unpack, tar_path, artifact.sha256)
                finally:
                    tar_path.unlink(missing_ok=True)
                log.info("artifact fetched", extra={"sha256": artifact.sha256, "bytes": artifact.size,
                                                    "from": artifact.url,
                                                    "seconds": round(time.monotonic() - started, 2)})
            os.utime(manifest)
        await asyncio.to_thread(self.evict, keep=artifact.sha256)
        return folder

    def _unpack(self, tar_path: Path, sha256: str) -> None:
        folder, manifest = self._paths(sha256)
        partial = self.folder / f"{sha256}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(tar_path, mode="r:") as tar:
            tar.extractall(partial, filter="data")
        entries = _manifest_of(partial)
        partial.rename(folder)
        manifest.write_text(json.dumps(entries))

    def entries(self) -> list[tuple[str, int, float]]:
        """(hash, bytes, last used) of every complete copy, least recently used first."""
        found = []
        for manifest in self.folder.glob("*.manifest.json") if self.folder.is_dir() else ():
            size = sum(entry[0] for entry in json.loads(manifest.read_text()).values())
            found.append((manifest.name.removesuffix(".manifest.json"), size, manifest.stat().st_mtime))
        return sorted(found, key=lambda e: e[2])

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used copies until the cache is within its bound; returns their hashes. A copy
        another process is fetching or using right now (its lock is held) is left alone."""
        entries = self.entries()
        total, removed = sum(size for _, size, _ in entries), []
        for sha256, size, _ in entries:
            if total <= self.max_bytes:
                break
            if sha256 == keep:
                continue
            with open(self.folder / f"{sha256}.lock", "w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                folder, manifest = self._paths(sha256)
                manifest.unlink(missing_ok=True)
                shutil.rmtree(folder, ignore_errors=True)
                fcntl.flock(lock, fcntl.LOCK_UN)
            total -= size
            removed.append(sha256)
        return removed


def node_cache(settings: Settings) -> ArtifactCache:
    """This node's cache, as the settings size it. A replica's settings are those of the process that built the
    application; the cache is on the disk of the node that reads it, so a node's own TANDEM_ARTIFACT_CACHE_DIR
    (in the environment of its `ray start`) wins."""
    folder = os.environ.get("TANDEM_ARTIFACT_CACHE_DIR") or settings.artifact_cache_dir
    return ArtifactCache(Path(folder) if folder else settings.var_dir / "artifact-cache",
                         int(settings.artifact_cache_gib * 2**30))


async def local_version(version: ModelVersion, cache: ArtifactCache, conn: asyncpg.Connection | None) -> ModelVersion:
    """`version` with `artifact_path` naming a folder on this node: its artifact fetched into the cache, or the
    path it was registered with for a version that predates the store."""
    artifact = version.artifact
    if artifact is None:
        return version
    return version.model_copy(update={"artifact_path": str(await cache.fetch(artifact, conn))})


class GarbageCollected(BaseModel):
    versions_deleted: list[str]  # "pipeline/version"
    artifacts_deleted: list[str]  # hashes in the database, URLs in an object store


async def collect_garbage(conn: asyncpg.Connection, store_url: str | None, keep: int) -> GarbageCollected:
    """Delete every version of each model but the active one and the `keep` latest others, then every stored
    artifact that no version names: chunks in the database, and `<sha256>.tar` objects under `store_url`."""
    async with conn.transaction():
        pruned = await registry.prune(conn, keep)
        deleted = await artifact_chunks.delete_unreferenced(conn)
    if store_url is not None:
        named = {v.artifact_url for v in await registry.list_versions(conn, None)}
        deleted += await asyncio.to_thread(_delete_unnamed_objects, store_url, named)
    return GarbageCollected(versions_deleted=[f"{v.pipeline}/{v.version}" for v in pruned], artifacts_deleted=deleted)


def _delete_unnamed_objects(store_url: str, named: set[str]) -> list[str]:
    fs, root = _fs(store_url)
    base, deleted = store_url.rstrip("/"), []
    for path in fs.glob(f"{root.rstrip('/')}/*.tar") if fs.exists(root) else ():
        url = f"{base}/{path.rsplit('/', 1)[-1]}"
        if url not in named:
            fs.rm(path)
            deleted.append(url)
    return deleted
