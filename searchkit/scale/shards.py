"""A sharded vector index on Ray: saved VectorIndex shards held by actors; a query goes to all, the top k is merged.

The search interface is :class:`~searchkit.index.vector.VectorIndex`'s, so the engine cannot tell the two apart. A shard
whose actor is down (killed, restarting, its node gone) is left out of the answer, which then says
``partial=True`` and names it in ``failed_shards``; Ray restarts the actor from its saved files.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from searchkit.errors import InputError, SearchIndexError, SearchkitError
from searchkit.index.manifest import (
    MANIFEST,
    REBUILD,
    BuiltIndex,
    Count,
    FileName,
    Sha256,
    read_manifest,
    read_verified,
    save_manifest,
    sha256,
)
from searchkit.index.vector import VERSIONS, IndexSpec, SearchResult, VectorIndex
from searchkit.scale import cluster  # noqa: F401  (sets the environment Ray reads on import)
from searchkit.threads import single_threaded
from searchkit.validation import as_matrix, check_positive_int

SHARD_CPUS = 0.25  # four shards fit on one core: they wait on queries far more than they compute


def shard_of(doc_id: str, n_shards: int) -> int:
    """Return the shard that holds ``doc_id``: crc32 of the id modulo the shard count (stable across runs)."""
    return zlib.crc32(str(doc_id).encode("utf-8", "surrogatepass")) % n_shards


def merge_topk(parts: Sequence[SearchResult], k: int) -> SearchResult:
    """Merge per-shard results of the same queries into one top ``k`` per query, highest inner product first."""
    n_queries = len(parts[0].ids) if parts else 0
    ids, scores = [], []
    for q in range(n_queries):
        pairs = [(s, d) for p in parts for d, s in zip(p.ids[q], p.scores[q])]
        pairs.sort(key=lambda t: -t[0])  # stable: ties keep shard order
        ids.append([d for _, d in pairs[:k]])
        scores.append([s for s, _ in pairs[:k]])
    return SearchResult(ids, scores)


# -- writing and reading a sharded index -----------------------------------------------------------


class ShardEntry(BaseModel):
    """One shard of a sharded index: its number, its folder and the sha256 of that folder's own manifest."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: Count = Field(description="the shard number, 0 to shards - 1")
    folder: FileName
    count: Count = Field(description="the number of vectors in the shard")
    manifest_sha256: Sha256


class ShardsManifest(BuiltIndex):
    """The manifest of a sharded index: what was built, how ids were split, and one entry per shard."""

    kind = "sharded index"
    type: Literal["shards"] = Field(description="'shards'")
    partition: Literal["crc32(id) % shards"] = Field(description="'crc32(id) % shards'")
    count: Count = Field(description="the number of vectors in all shards")
    shards: list[ShardEntry] = Field(min_length=1, description="one entry per shard, numbered from 0")


def build_shards(
    ids: Sequence[str],
    xb: np.ndarray,
    n_shards: int,
    out: str | Path,
    factory: str | IndexSpec = "Flat",
    model_id: str | None = None,
    progress: bool | None = None,
    backend: str | None = None,
) -> Path:
    """Split ``ids``/``xb`` into ``n_shards`` by id hash, build and save each shard under ``out``; return the manifest.

    Atomic like :meth:`VectorIndex.save`: shards go to new folders, ``manifest.json`` (naming them, with the
    SHA-256 of each shard's own manifest) replaces the old one last, and only then are old shard folders removed.
    """
    n_shards = check_positive_int("the number of shards", n_shards)
    xb = as_matrix(xb)
    ids = [str(i) for i in ids]
    owner = np.array([shard_of(d, n_shards) for d in ids], dtype=np.int64)
    empty = [s for s in range(n_shards) if not (owner == s).any()]
    if empty:
        raise InputError(f"{len(ids)} documents leave shard {empty[0]} of {n_shards} empty: use fewer shards")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    generation = uuid.uuid4().hex[:8]
    entries, first = [], None
    for s in range(n_shards):
        rows = np.flatnonzero(owner == s)
        index = VectorIndex.build([ids[r] for r in rows], xb[rows], factory, model_id=model_id, progress=progress)
        index.backend = backend
        folder = out / f"shard-{s:03d}-{generation}"
        manifest = index.save(folder)
        entries.append(ShardEntry(id=s, folder=folder.name, count=len(index), manifest_sha256=sha256(manifest.read_bytes())))
        first = first or index
    top = ShardsManifest(
        format=1, type="shards", partition="crc32(id) % shards", model=first.model_id, backend=backend, dim=first.dim,
        metric=first.metric, factory=first.factory, count=len(ids), shards=entries,
    )  # fmt: skip
    save_manifest(out, top)
    keep = {e.folder for e in entries}
    for old in out.glob("shard-*"):
        if old.is_dir() and old.name not in keep:
            for f in old.iterdir():
                f.unlink(missing_ok=True)
            old.rmdir()
    return out / MANIFEST


def is_sharded(folder: str | Path) -> bool:
    """True when ``folder`` holds a sharded index (its manifest says ``"type": "shards"``)."""
    path = Path(folder) / MANIFEST
    try:
        return path.is_file() and path.stat().st_size < (1 << 20) and json.loads(path.read_bytes()).get("type") == "shards"
    except (ValueError, UnicodeDecodeError, AttributeError, OSError, RecursionError):
        return False


def read_shard_manifest(folder: str | Path) -> ShardsManifest:
    """Read the manifest of a sharded index and check every shard's own manifest against its checksum."""
    folder = Path(folder)
    top = read_manifest(folder, ShardsManifest)
    if [e.id for e in top.shards] != list(range(len(top.shards))):
        raise SearchIndexError(f"{folder / MANIFEST} numbers its shards {[e.id for e in top.shards]}, not 0 to "
                               f"{len(top.shards) - 1}: {REBUILD} --shards N")  # fmt: skip
    for e in top.shards:
        shard = folder / e.folder
        if not shard.is_dir():
            raise SearchIndexError(f"shard {e.id} of {folder} is missing ({shard}): {REBUILD} --shards N")
        try:
            read_verified(shard, MANIFEST, e.manifest_sha256)
        except SearchIndexError as err:
            raise SearchIndexError(f"shard {e.id} is damaged: {err}") from None
    return top


# -- the actor that holds one shard ------------------------------------------------------------------


class ShardServer:
    """Hold one saved shard in a Ray actor; Ray re-runs ``__init__`` (reloading the files) after a crash."""

    def __init__(self, shard_id: int, folder: str, model_id: str | None, dim: int):
        import ray

        single_threaded()
        self.shard_id, self.error, self.index = shard_id, None, None
        ctx = ray.get_runtime_context()
        self.node = ctx.get_node_id()
        try:
            self.index = VectorIndex.load(folder, model_id=model_id, dim=dim)
        except SearchkitError as e:  # reported by ready(): one line, not a Ray traceback
            self.error = str(e)

    def ready(self) -> dict:
        """Return this shard's id, node, process id, vector count and load error (None when loaded)."""
        import os

        n = None if self.index is None else len(self.index)
        return {"id": self.shard_id, "node": self.node, "pid": os.getpid(), "vectors": n, "error": self.error}

    def search(self, xq: np.ndarray, k: int, nprobe, ef_search, subset, prefix) -> SearchResult | None:
        """Return this shard's top ``k`` for ``xq`` (None if its files failed to load)."""
        if self.index is None:
            return None
        return self.index.search(xq, k, nprobe=nprobe, ef_search=ef_search, subset=subset, prefix=prefix)

    def doc_ids(self) -> list[str]:
        """Return the ids this shard holds."""
        return [] if self.index is None else self.index.doc_ids()


class ShardedIndex:
    """N shards on a Ray cluster behind the :class:`VectorIndex` search interface (``search(xq, k, ...)``)."""

    def __init__(self, folder: Path, manifest: ShardsManifest, actors: list, timeout_s: float):
        self.folder, self.actors, self.timeout_s = folder, actors, timeout_s
        self.dim, self.metric, self.factory = manifest.dim, manifest.metric, manifest.factory
        self.model_id, self.count, self.backend = manifest.model, manifest.count, manifest.backend
        self.ef_search = self.nprobe = None
        self.read_only = True
        self.version = next(VERSIONS)  # the shards never change once loaded
        self._nodes: dict[int, str] = {}

    @classmethod
    def load(
        cls,
        folder: str | Path,
        model_id: str | None = None,
        dim: int | None = None,
        num_cpus: float = SHARD_CPUS,
        timeout_s: float = 30.0,
    ) -> ShardedIndex:
        """Start one actor per shard of ``folder`` on the connected Ray cluster, spread over its nodes.

        Every file is checked (manifest checksums, then each shard's own checks inside its actor); a damaged
        shard is refused with one line. Actors restart without limit, reloading their shard from its files.
        """
        import ray

        if not ray.is_initialized():
            raise SearchIndexError("no Ray cluster: call searchkit.scale.cluster.start_local() (or connect) before loading shards")
        folder = Path(folder).resolve()
        top = read_shard_manifest(folder)
        if model_id is not None and top.model != model_id:
            raise SearchIndexError(f"shards in {folder} were built with model {top.model!r}, not {model_id!r}: {REBUILD}")
        if dim is not None and top.dim != dim:
            raise SearchIndexError(f"shards in {folder} have dimension {top.dim} but the model gives {dim}: {REBUILD}")
        actor = ray.remote(ShardServer).options(
            num_cpus=num_cpus, max_restarts=-1, max_task_retries=0, scheduling_strategy="SPREAD"
        )
        actors = [actor.remote(e.id, str(folder / e.folder), top.model, top.dim) for e in top.shards]
        self = cls(folder, top, actors, timeout_s)
        infos = ray.get([a.ready.remote() for a in actors])
        bad = next((i for i in infos if i["error"]), None)
        if bad is not None:
            self.close()
            raise SearchIndexError(bad["error"])
        self._nodes = {i["id"]: i["node"] for i in infos}
        return self

    def __len__(self) -> int:
        return int(self.count)

    def __repr__(self) -> str:
        return f"ShardedIndex({self.factory!r}, dim={self.dim}, n={self.count}, shards={len(self.actors)})"

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Refused: shards are read from their saved files (an actor restart reloads them)."""
        raise SearchIndexError(f"a sharded index is read-only: {REBUILD} --shards N to add documents")

    def remove(self, ids: Iterable[str]) -> int:
        """Refused: shards are read from their saved files (an actor restart reloads them)."""
        raise SearchIndexError(f"a sharded index is read-only: {REBUILD} --shards N to remove documents")

    @property
    def n_shards(self) -> int:
        """Return the number of shards."""
        return len(self.actors)

    def search(
        self,
        xq: np.ndarray,
        k: int = 10,
        params=None,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        subset: Iterable[str] | None = None,
        prefix: str | None = None,
    ) -> SearchResult:
        """Send ``xq`` to every shard and merge their top ``k`` (see :meth:`VectorIndex.search`)."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        k = check_positive_int("k", k)
        xq = as_matrix(xq, self.dim, name="queries")
        if params is not None:  # faiss parameter objects cannot travel: send their numbers
            nprobe = nprobe or getattr(params, "nprobe", None)
            ef_search = ef_search or getattr(params, "efSearch", None)
        subset = None if subset is None else list(subset)
        ref = ray.put(xq)
        calls = [a.search.remote(ref, k, nprobe, ef_search, subset, prefix) for a in self.actors]
        ray.wait(calls, num_returns=len(calls), timeout=self.timeout_s)
        parts, failed = [], []
        for shard, call in enumerate(calls):
            try:
                part = ray.get(call, timeout=0)
            except RayTaskError as e:
                if isinstance(e.cause, SearchkitError):  # a bad argument: the caller's error, not the shard's
                    raise e.cause from None
                part = None
            except RayError:  # actor dead or restarting, or too slow
                part = None
            if part is None:
                failed.append(shard)
            else:
                parts.append(part)
        if not parts:
            raise SearchIndexError(f"all {len(calls)} shards are down: check the Ray cluster (GET /health lists them)")
        merged = merge_topk(parts, k)
        merged.partial, merged.failed_shards = bool(failed), failed
        return merged

    def search_each(self, xq: np.ndarray, k: int = 10) -> list[SearchResult]:
        """Return every shard's own top ``k`` for ``xq``, shard by shard, unmerged (to look at the scatter step)."""
        import ray

        xq = as_matrix(xq, self.dim, name="queries")
        return ray.get([a.search.remote(xq, check_positive_int("k", k), None, None, None, None) for a in self.actors])

    def wait_ready(self, timeout_s: float = 120.0) -> float:
        """Wait until every shard answers (after a restart); return the seconds waited."""
        import time

        t0 = time.monotonic()
        while any(h["state"] != "up" for h in self.health()):
            if time.monotonic() - t0 > timeout_s:
                raise SearchIndexError(f"shards still down after {timeout_s:.0f} s: {self.health()}; check the Ray cluster")
            time.sleep(0.25)
        return time.monotonic() - t0

    def health(self, timeout_s: float = 2.0) -> list[dict]:
        """Return ``{"id", "node", "state"}`` for every shard: state 'up', or 'down' while its actor is unreachable."""
        import ray
        from ray.exceptions import RayError

        calls = [a.ready.remote() for a in self.actors]
        ray.wait(calls, num_returns=len(calls), timeout=timeout_s)
        out = []
        for shard, call in enumerate(calls):
            try:
                info = ray.get(call, timeout=0)
                self._nodes[shard] = info["node"]
                state = "up" if info["error"] is None else "down"
            except RayError:
                state = "down"
            out.append({"id": shard, "node": self._nodes.get(shard), "state": state})
        return out

    def pids(self) -> list[int]:
        """Return the process id of each shard's actor (to inject faults in tests)."""
        import ray

        return [i["pid"] for i in ray.get([a.ready.remote() for a in self.actors])]

    def doc_ids(self) -> list[str]:
        """Return the ids of every document, shard by shard."""
        import ray

        return [d for part in ray.get([a.doc_ids.remote() for a in self.actors]) for d in part]

    def close(self) -> None:
        """End the shard actors (the cluster keeps running)."""
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)
        self.actors = []
