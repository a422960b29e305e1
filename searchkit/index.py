"""A faiss index that speaks document ids: add, search, save and load with checks at every step."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .errors import InputError, SearchIndexError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def as_matrix(x: np.ndarray | Sequence, dim: int | None = None, name: str = "vectors") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ``(n, d)`` array; reject NaN/inf and a wrong ``d``."""
    try:
        arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name} must be numbers in an (n, d) array: {e}") from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InputError(f"{name} must have shape (n, d) or (d,), got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(
            f"index has dimension {dim} but the {name} have {arr.shape[1]}: "
            "embed with the same model the index was built with, or rebuild the index"
        )
    if arr.size and not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise InputError(f"{name} row {bad} contains NaN or inf: check the embedding step that produced it")
    return arr


@dataclass
class SearchResult:
    """Results for a batch of queries: ``ids[q]`` and ``scores[q]`` hold the hits of query ``q``, best first."""

    ids: list[list[str]]
    scores: list[list[float]]


class VectorIndex:
    """A faiss index (built from a factory string) whose results are document ids, not row numbers."""

    def __init__(self, dim: int, factory: str = "Flat", metric: str = "ip", model_id: str | None = None):
        if metric not in _METRICS:
            raise InputError(f"unknown metric {metric!r}: use 'ip' (cosine on unit vectors) or 'l2'")
        if not isinstance(dim, int) or dim < 1:
            raise InputError(f"dimension must be a positive integer, got {dim!r}")
        try:
            base = faiss.index_factory(dim, factory, _METRICS[metric])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].split(": ")[-1] if str(e).strip() else "faiss error"
            raise InputError(
                f"unknown or invalid faiss factory string {factory!r} ({first}): "
                "try 'Flat', 'HNSW32', 'IVF256,Flat', 'IVF256,PQ32' or 'SQ8'"
            ) from None
        self.dim = dim
        self.factory = factory
        self.metric = metric
        self.model_id = model_id
        self.index = faiss.IndexIDMap2(base)
        self.ids: list[str | None] = []  # faiss label -> document id (None once deleted)
        self._label: dict[str, int] = {}

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"VectorIndex({self.factory!r}, dim={self.dim}, n={len(self)}, model={self.model_id!r})"

    @property
    def is_trained(self) -> bool:
        """True when the index can take vectors (always for Flat and HNSW; IVF and PQ need ``train``)."""
        return bool(self.index.is_trained)

    def train(self, xb: np.ndarray) -> None:
        """Train the quantizers of IVF/PQ/SQ indexes on sample vectors ``xb`` of shape ``(n, dim)``."""
        self.index.train(as_matrix(xb, self.dim))

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Add vectors ``xb`` (shape ``(n, dim)``) under document ids ``ids``."""
        xb = as_matrix(xb, self.dim)
        ids = [str(i) for i in ids]
        if len(ids) != len(xb):
            raise InputError(f"got {len(ids)} ids for {len(xb)} vectors: give exactly one id per vector")
        dup = next((i for i in ids if i in self._label), None) or _first_duplicate(ids)
        if dup is not None:
            raise InputError(f"document id {dup!r} is already in the index: remove it first or use update()")
        if not self.is_trained:
            raise SearchIndexError(f"index {self.factory!r} is not trained: call train(vectors) before add()")
        start = len(self.ids)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        self.index.add_with_ids(xb, labels)
        self.ids.extend(ids)
        self._label.update(zip(ids, range(start, start + len(ids))))

    def search(
        self, xq: np.ndarray, k: int = 10, params: faiss.SearchParameters | None = None
    ) -> SearchResult:
        """Return the ``k`` nearest documents of each query row of ``xq`` (fewer if the index is smaller)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        xq = as_matrix(xq, self.dim, name="queries")
        if not self.is_trained:
            raise SearchIndexError(f"index {self.factory!r} is not trained: train and add vectors before searching")
        if len(self) == 0:
            raise SearchIndexError("index is empty: add vectors before searching")
        k = min(int(k), len(self))
        D, I = self.index.search(xq, k, params=params)
        ids, scores = [], []
        for drow, irow in zip(D, I):
            keep = irow >= 0
            ids.append([self.ids[j] for j in irow[keep]])  # type: ignore[misc]
            scores.append([float(d) for d in drow[keep]])
        return SearchResult(ids, scores)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` atomically; return the manifest path.

        Data files get new names, are fsynced, and only then does ``manifest.json`` (which names
        them) replace the old one, so a crash leaves either the old or the new index, never a mix.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        blob = faiss.serialize_index(self.index).tobytes()
        ids_blob = json.dumps(self.ids).encode()
        index_sha, ids_sha = _sha256(blob), _sha256(ids_blob)
        index_file, ids_file = f"index-{index_sha[:16]}.faiss", f"ids-{ids_sha[:16]}.json"
        _write_atomic(folder / index_file, blob)
        _write_atomic(folder / ids_file, ids_blob)
        manifest = {
            "format": FORMAT_VERSION,
            "model": self.model_id,
            "dim": self.dim,
            "metric": self.metric,
            "factory": self.factory,
            "count": len(self),
            "faiss_version": faiss.__version__,
            "index_file": index_file,
            "index_sha256": index_sha,
            "ids_file": ids_file,
            "ids_sha256": ids_sha,
        }
        _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
        for old in folder.iterdir():  # files of earlier versions, no longer named by the manifest
            if old.name.startswith(("index-", "ids-")) and old.name not in (index_file, ids_file):
                old.unlink(missing_ok=True)
        return folder / MANIFEST

    @classmethod
    def load(
        cls, folder: str | Path, model_id: str | None = None, dim: int | None = None, mmap: bool = False
    ) -> VectorIndex:
        """Load an index saved by :meth:`save`, verifying checksums and (if given) the model and dimension."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if model_id is not None and manifest["model"] != model_id:
            raise SearchIndexError(
                f"index in {folder} was built with model {manifest['model']!r}, not {model_id!r}: "
                "rebuild it with this model (python -m searchkit build) or load the matching model"
            )
        if dim is not None and manifest["dim"] != dim:
            raise SearchIndexError(
                f"index in {folder} has dimension {manifest['dim']} but the model gives {dim}: rebuild the index"
            )
        index_path = folder / manifest["index_file"]
        ids_blob = _read_verified(folder / manifest["ids_file"], manifest["ids_sha256"])
        _read_verified(index_path, manifest["index_sha256"], keep=False)
        try:
            if mmap:
                raw = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
            else:
                raw = faiss.read_index(str(index_path))
            ids = json.loads(ids_blob)
        except (RuntimeError, ValueError) as e:
            raise SearchIndexError(f"index in {folder} cannot be read ({e}): rebuild it") from None
        self = cls.__new__(cls)
        self.dim, self.factory, self.metric = manifest["dim"], manifest["factory"], manifest["metric"]
        self.model_id = manifest["model"]
        self.index = raw
        self.ids = ids
        self._label = {d: i for i, d in enumerate(ids) if d is not None}
        if self.index.d != self.dim or len(self) != manifest["count"] or len(self._label) != manifest["count"]:
            raise SearchIndexError(
                f"index in {folder} does not match its manifest (dim {self.index.d}, {len(self)} vectors, "
                f"{len(self._label)} ids; manifest says dim {self.dim}, {manifest['count']}): rebuild it"
            )
        return self


def read_manifest(folder: str | Path) -> dict:
    """Read and check ``manifest.json`` in ``folder``."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SearchIndexError(f"no index in {folder}: {MANIFEST} is missing; build one with python -m searchkit build")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise SearchIndexError(f"{path} is not valid JSON ({e}): the index is damaged, rebuild it") from None
    need = {"format", "model", "dim", "metric", "factory", "count", "index_file", "index_sha256", "ids_file", "ids_sha256"}
    if not isinstance(manifest, dict) or need - manifest.keys():
        missing = sorted(need - manifest.keys()) if isinstance(manifest, dict) else sorted(need)
        raise SearchIndexError(f"{path} lacks {', '.join(missing)}: not a searchkit index, rebuild it")
    if manifest["format"] != FORMAT_VERSION:
        raise SearchIndexError(f"{path} has format {manifest['format']!r}; this searchkit reads {FORMAT_VERSION}: rebuild")
    for key in ("index_file", "ids_file"):
        name = manifest[key]
        if not isinstance(name, str) or Path(name).name != name:
            raise SearchIndexError(f"{path} names a bad {key} {name!r}: rebuild the index")
    return manifest


def _first_duplicate(ids: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _read_verified(path: Path, sha: str, keep: bool = True) -> bytes:
    if not path.is_file():
        raise SearchIndexError(f"{path} is missing: the index is incomplete, rebuild it")
    h = hashlib.sha256()
    chunks = []
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            if keep:
                chunks.append(block)
    if h.hexdigest() != sha:
        raise SearchIndexError(f"{path} fails its checksum (sha256 {h.hexdigest()[:12]}…, expected {sha[:12]}…): rebuild")
    return b"".join(chunks)


def _write_atomic(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` through a temp file, fsync and rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
