"""Saving and loading a :class:`~searchkit.index.vector.VectorIndex`: data files first, the manifest last, checked on load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from searchkit.errors import SearchIndexError
from searchkit.index.manifest import (
    FORMAT_VERSION,
    REBUILD,
    IndexManifest,
    parse_ids,
    parse_sources,
    read_manifest,
    read_verified,
    save_manifest,
    sha256,
)
from searchkit.storage import write_atomic

if TYPE_CHECKING:
    from searchkit.index.vector import VectorIndex


def save_index(vi: VectorIndex, folder: str | Path, sources: dict | None = None) -> Path:
    """Write the index to ``folder`` atomically; return the manifest path (``sources``: incremental-build state).

    Data files get new names, are fsynced, and only then does ``manifest.json`` (which names
    them) replace the old one, so a crash leaves either the old or the new index, never a mix.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a writer that was killed mid-write
        stale.unlink(missing_ok=True)
    blob = faiss.serialize_index(vi.index).tobytes()
    ids_blob = json.dumps(vi.ids).encode()
    index_sha, ids_sha = sha256(blob), sha256(ids_blob)
    index_file, ids_file = f"index-{index_sha[:16]}.faiss", f"ids-{ids_sha[:16]}.json"
    src_blob = json.dumps(sources, sort_keys=True).encode() if sources is not None else None
    src_sha = sha256(src_blob) if src_blob is not None else None
    src_file = f"sources-{src_sha[:16]}.json" if src_sha else None
    manifest = IndexManifest(
        format=FORMAT_VERSION, model=vi.model_id, model_sha256=getattr(vi, "model_sha256", None), backend=vi.backend, scheme=vi.scheme, dim=vi.dim, metric=vi.metric,
        factory=vi.factory, count=len(vi), faiss_version=faiss.__version__, index_file=index_file,
        index_sha256=index_sha, ids_file=ids_file, ids_sha256=ids_sha, ef_search=vi.ef_search, nprobe=vi.nprobe,
        sources_file=src_file, sources_sha256=src_sha,
    )  # fmt: skip  (made before writing: a value the loader would refuse fails here)
    write_atomic(folder / index_file, blob)
    write_atomic(folder / ids_file, ids_blob)
    if src_file:
        write_atomic(folder / src_file, src_blob)
    path = save_manifest(folder, manifest)
    for old in folder.iterdir():  # files of earlier versions, no longer named by the manifest
        if old.name.startswith(("index-", "ids-", "sources-")) and old.name not in (index_file, ids_file, src_file):
            old.unlink(missing_ok=True)
    return path


@dataclass
class SavedIndex:
    """What an index folder holds, checked: the faiss index, its ids, its manifest and incremental-build state."""

    index: faiss.Index
    ids: list[str | None]
    manifest: IndexManifest
    sources: dict | None
    read_only: bool


def load_index(
    folder: str | Path, model_id: str | None = None, dim: int | None = None, mmap: bool = False,
    model_sha256: str | None = None,
) -> SavedIndex:  # fmt: skip
    """Read an index folder written by :func:`save_index`, verifying checksums and (if given) the model and dimension.

    The model is the same when both content hashes are known and equal (a folder may move); otherwise, its name.

    ``mmap=True`` maps the index file read-only instead of reading it into memory (for indexes larger
    than RAM, or shared between processes); such an index can be searched but not changed.
    """
    folder = Path(folder)
    m = read_manifest(folder)
    hashes = model_sha256 is not None and m.model_sha256 is not None  # an older manifest has no hash: names decide
    if hashes and m.model_sha256 != model_sha256:
        raise SearchIndexError(
            f"index in {folder} was built with model {m.model!r} (sha256 {m.model_sha256[:12]}…), not with "
            f"{model_id!r} (sha256 {model_sha256[:12]}…): rebuild it with this model (python -m searchkit build "
            "--model ...) or load the model it was built with"
        )
    if not hashes and model_id is not None and m.model != model_id:
        raise SearchIndexError(
            f"index in {folder} was built with model {m.model!r}, not {model_id!r}: "
            "rebuild it with this model (python -m searchkit build) or load the matching model"
        )
    if dim is not None and m.dim != dim:
        raise SearchIndexError(f"index in {folder} has dimension {m.dim} but the model gives {dim}: rebuild the index")
    _, ids_blob = read_verified(folder, m.ids_file, m.ids_sha256)
    ids = parse_ids(ids_blob, folder / m.ids_file)
    index_path, _ = read_verified(folder, m.index_file, m.index_sha256, keep=False)
    try:
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        raw = faiss.read_index(str(index_path), flags)
    except RuntimeError:  # faiss's message may quote the file's first bytes: not worth echoing
        raise SearchIndexError(f"{folder / m.index_file} is not an index faiss {faiss.__version__} can read: {REBUILD}") from None
    _check_labels(raw, ids, folder / m.index_file)
    live = len({d for d in ids if d is not None})  # a repeated id would shadow a vector
    if raw.d != m.dim or raw.ntotal != m.count or live != m.count:
        raise SearchIndexError(
            f"index in {folder} does not match its manifest (dim {raw.d}, {raw.ntotal} vectors, "
            f"{live} ids; manifest says dim {m.dim}, {m.count}): {REBUILD}"
        )
    sources = None  # {doc id: SourceState} when saved by an incremental build
    if m.sources_file and m.sources_sha256:
        sources = parse_sources(read_verified(folder, m.sources_file, m.sources_sha256)[1], folder / m.sources_file)
    return SavedIndex(raw, ids, m, sources, bool(mmap))


def _check_labels(raw: faiss.Index, ids: list[str | None], source: Path) -> None:
    """Refuse a faiss file that is not an id-mapped index, or whose labels are not live rows of ``ids``."""
    if not isinstance(raw, faiss.IndexIDMap2):
        raise SearchIndexError(f"{source} holds a faiss {type(raw).__name__}, not a searchkit index: {REBUILD}")
    labels = faiss.vector_to_array(raw.id_map)
    live = np.fromiter((d is not None for d in ids), dtype=bool, count=len(ids))
    inside = (labels >= 0) & (labels < len(ids))
    wrong = ~inside
    wrong[inside] = ~live[labels[inside]]
    if wrong.any():
        bad = int(labels[np.argmax(wrong)])
        raise SearchIndexError(f"{source} has vector label {bad}, which names no id in the ids file: {REBUILD}")
