"""A static encoder distilled from the sentence transformer: a vector per word piece, a text is their mean.

Distillation (model2vec's ``distill_from_model``, run once, offline, from the local model folder): every word
piece of the vocabulary goes through the transformer alone (``[CLS] piece [SEP]``, mean-pooled), the vectors are
rotated by PCA (kept at the model's 384 dimensions by default, so index shapes do not change), and each piece's
vector is scaled by a Zipf weight (``1e-4 / (1e-4 + p)``, ``p`` the piece's frequency estimated from its rank in the
vocabulary): frequent pieces such as "the" count for little. The result is cached in
``data/cache/static/<name>-<fingerprint>/`` like the ONNX export and reused afterwards.

Encoding is a table lookup and a mean (``model2vec.StaticModel``): no attention, so no word order and no context
(a piece has one vector whatever surrounds it), but some thousand times less arithmetic than the transformer.
A text's vector depends on its own pieces only: the same alone or in any batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from searchkit.config import cache_dir
from searchkit.errors import ModelNotFoundError
from searchkit.storage import atomic_folder
from searchkit.validation import check_positive_int, check_texts

DISTILL_VERSION = 1  # bump when the distillation changes, so old models (and vectors cached from them) are not reused
DEFAULT_DIM = 384  # PCA keeps every dimension: same index shapes as the transformer (256 costs nDCG: docs/)
SIF = 1e-4  # Zipf weight a / (a + p) of a piece of estimated frequency p
MAX_PIECES = 256  # word pieces read per text, [CLS] and [SEP] counted as in the transformer (so chunking agrees)
FILES = ("model.safetensors", "tokenizer.json", "config.json")


def scheme_of(dim: int = DEFAULT_DIM) -> str:
    """Return the scheme name recorded in cache ids and index manifests, e.g. ``'m2v-v1-384'``."""
    return f"m2v-v{DISTILL_VERSION}-{dim}"


def static_dir(source: str | Path, dim: int = DEFAULT_DIM, name: str | None = None) -> Path:
    """Return ``data/cache/static/<name>-<fingerprint>`` for ``source`` distilled to ``dim`` (not created)."""
    source = Path(source)
    h = hashlib.sha256(f"{scheme_of(dim)}/sif={SIF}".encode())
    for f in ("config.json", "tokenizer.json", "1_Pooling/config.json"):
        p = source / f
        h.update(p.read_bytes() if p.is_file() else b"-")
    for f in sorted(source.glob("*.safetensors")) + sorted(source.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return cache_dir() / "static" / f"{name or source.name}-{dim}-{h.hexdigest()[:12]}"


def distill(source: str | Path, dim: int = DEFAULT_DIM):
    """Distill the transformer in folder ``source`` into a ``model2vec.StaticModel`` of ``dim`` dimensions."""
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    source = Path(source)
    if not (source / "config.json").is_file() or not (source / "tokenizer.json").is_file():
        raise ModelNotFoundError(
            f"cannot distill {source}: config.json or tokenizer.json missing. Fix: pass the folder of a local "
            "sentence-transformers model with a fast tokenizer (the packaged all-MiniLM-L6-v2 works)"
        )
    model = AutoModel.from_pretrained(str(source), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    dims = min(dim, model.config.hidden_size)
    return distill_from_model(model, tokenizer, device="cpu", pca_dims=dims, sif_coefficient=SIF, quantize_to="float32")


def ensure_static(source: str | Path, dim: int = DEFAULT_DIM, name: str | None = None) -> Path:
    """Distill ``source`` once; return the folder holding the static model (reused when present)."""
    check_positive_int("dim", dim)
    final = static_dir(source, dim, name)
    if (final / "meta.json").is_file():
        return final
    with atomic_folder(final, keep_existing=True) as tmp:  # another process may finish the same distillation first
        distill(source, dim).save_pretrained(str(tmp))
        meta = {"source": str(source), "scheme": scheme_of(dim), "dim": dim, "sif_coefficient": SIF,
                "method": "model2vec distill_from_model: each vocabulary piece through the model, PCA, Zipf weights"}  # fmt: skip
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))  # written last: marks a complete model
    return final


def load_static(folder: str | Path):
    """Load the StaticModel saved in ``folder``; a damaged or partial folder raises ModelNotFoundError naming the fix."""
    from model2vec import StaticModel

    folder = Path(folder)
    fix = f"delete the folder {folder} and run again (the model is distilled anew from the packaged one)"
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise ModelNotFoundError(f"the static model in {folder} is incomplete ({', '.join(missing)} missing): {fix}")
    try:
        model = StaticModel.from_pretrained(str(folder))
    except Exception as e:  # noqa: BLE001 - safetensors, json and tokenizers fail with many types
        raise ModelNotFoundError(f"the static model in {folder} is damaged ({type(e).__name__}: {str(e)[:120]}): {fix}") from None
    if model.embedding.ndim != 2 or not np.isfinite(model.embedding).all():
        raise ModelNotFoundError(f"the static model in {folder} holds unusable vectors: {fix}")
    return model


class StaticEncoder:
    """The static model behind the SentenceTransformer surface ``Embedder`` calls: ``encode`` and the dimension."""

    def __init__(self, source: str | Path, dim: int = DEFAULT_DIM, name: str | None = None):
        from tokenizers import Tokenizer

        self.folder = ensure_static(source, dim, name)
        self.model = load_static(self.folder)
        self.max_seq_length = MAX_PIECES
        self.model.config["max_length"] = MAX_PIECES - 2  # (set first: the setter warns on a mismatch)
        self.model.max_length = MAX_PIECES - 2  # pieces without [CLS]/[SEP]: a text cut by Embedder.truncate agrees
        self.tokenizer = Tokenizer.from_file(str(Path(source) / "tokenizer.json"))  # counts pieces as the transformer
        self.scheme = scheme_of(self.model.dim)

    def __repr__(self) -> str:
        return f"StaticEncoder({self.folder.name!r}, dim={self.model.dim})"

    def get_embedding_dimension(self) -> int:
        """Return the embedding dimension (384 unless distilled to fewer)."""
        return int(self.model.dim)

    def encode(
        self, texts: Sequence[str] | str, batch_size: int = 1024, normalize_embeddings: bool = False,
        convert_to_numpy: bool = True, show_progress_bar: bool = False,
    ) -> np.ndarray:  # fmt: skip
        """Embed ``texts``; return ``(n, dim)`` float32 (unit length with ``normalize_embeddings=True``)."""
        items = check_texts(texts)
        check_positive_int("batch_size", batch_size)
        out = np.asarray(self.model.encode(items, batch_size=max(batch_size, 1024), use_multiprocessing=False,
                                           normalize=False), dtype=np.float32)  # fmt: skip
        out = np.ascontiguousarray(out.reshape(len(items), self.model.dim))
        if normalize_embeddings:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out
