"""Turn texts into L2-normalized float32 vectors, with an on-disk cache for whole corpora."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from searchkit.config import cache_dir
from searchkit.encoders.model_files import model_sha256
from searchkit.encoders.models import DEFAULT_MODEL, Backend, load_model, resolve_model
from searchkit.errors import InputError
from searchkit.storage import save_arrays_atomic
from searchkit.validation import check_positive_int, check_texts

PROGRESS_MIN = 1000  # show a progress bar from this many texts on


class Embedder:
    """A sentence-embedding model: ``encode(texts) -> (n, dim)`` float32, unit length, C-contiguous.

    ``backend`` runs it with PyTorch (``"torch"``), ONNX Runtime (``"onnx"``, ``"onnx-int8"``) or as the static
    model distilled from it (``"static"``: searchkit.encoders.static). The model id names the model alone (an index
    built with one transformer backend is searchable with another; static vectors live in a space of their own, and
    the engine refuses to mix them); ``cache_id`` adds the backend and scheme, so cached vectors never mix, and for a
    model folder of your own (``model=DIR``, e.g. a fine-tuned one) its content hash, so a model trained again into
    the same folder never reuses the old model's vectors. ``model_sha256`` is that hash (None for a hub name).
    """

    def __init__(self, model: str | None = None, backend: Backend = "torch", batch_size: int = 64):
        self.model, self.model_id = load_model(model, backend=backend)  # checks the backend name before loading
        self.backend = backend
        self.source = resolve_model(model)[1]  # the folder (or hub name) the weights came from
        scheme = getattr(self.model, "scheme", None)  # the ONNX or static scheme: a new one re-embeds
        ident = self.model_id if self.model_id == DEFAULT_MODEL else f"{self.model_id}#{(self.model_sha256 or '')[:16]}"
        self.cache_id = ident if backend == "torch" else f"{ident}@{backend}/{scheme}"
        self.batch_size = batch_size
        self.dim: int = int(self.model.get_embedding_dimension())
        self._lock = threading.Lock()  # tokenizers are not safe to call from several threads at once
        self.max_pieces: int = int(getattr(self.model, "max_seq_length", None) or self.model.max_length)
        self._pieces = _counting_tokenizer(self.model)  # a private copy: counts without taking the model's lock
        self._pieces_lock = threading.Lock()

    @cached_property
    def model_sha256(self) -> str | None:
        """The sha256 over the model folder's weights, config and tokenizer (None for a hub name)."""
        return model_sha256(self.source) if Path(self.source).is_dir() else None

    def __repr__(self) -> str:
        return f"Embedder({self.model_id!r}, backend={self.backend!r}, dim={self.dim})"

    def encode(self, texts: Sequence[str], batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Embed ``texts``; return an ``(n, dim)`` float32 array of unit vectors."""
        items = check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size = check_positive_int("batch_size", self.batch_size if batch_size is None else batch_size)
        show = len(items) >= PROGRESS_MIN if progress is None else progress
        chunk = max(batch_size * 16, 1024)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        from tqdm.auto import tqdm

        with tqdm(total=len(items), desc="embedding", unit="text", disable=not show) as bar:
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                with self._lock:
                    vecs = self.model.encode(
                        part, batch_size=batch_size, normalize_embeddings=True,
                        convert_to_numpy=True, show_progress_bar=False,
                    )  # fmt: skip
                out[start : start + len(part)] = vecs
                bar.update(len(part))
        return out

    def truncate(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        """Return ``texts`` cut to what the model reads (``max_pieces`` word pieces) and each one's piece count.

        The model ignores every word piece after the first ``max_pieces`` (special tokens included), so a cut
        text embeds to the same vector as the whole one, while its cost is known before it is encoded.
        """
        items = check_texts(texts)
        with self._pieces_lock:
            encodings = self._pieces.encode_batch(items)
        cut, counts = [], []
        for text, enc in zip(items, encodings):
            n = len(enc.ids)
            if n > self.max_pieces:  # [CLS], pieces 1 .. max-2, [SEP]: keep the text up to piece max-2
                text = text[: enc.offsets[self.max_pieces - 2][1]]
            cut.append(text)
            counts.append(min(n, self.max_pieces))
        return cut, counts

    def twin(self) -> Embedder:
        """Return a second handle on this model whose calls may run alongside this one's (own tokenizer, own lock).

        A torch model is copied (its tokenizer is not safe to share between threads; the copy costs the
        weights' memory once more, ~90 MB for all-MiniLM-L6-v2); an ONNX session is shared (it is thread-safe).
        """
        import copy

        other = copy.copy(self)
        if self.backend == "torch":
            other.model = copy.deepcopy(self.model)
        other._lock, other._pieces_lock = threading.Lock(), threading.Lock()
        other._pieces = _counting_tokenizer(other.model)
        return other

    def encode_cached(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """Like :meth:`encode`, but reuse vectors saved under ``data/cache/embeddings`` for the same texts."""
        items = check_texts(texts)
        path = embedding_cache_path(self.cache_id, items)
        if path.is_file():
            vecs = np.load(path)
            if vecs.shape == (len(items), self.dim):
                return np.ascontiguousarray(vecs, dtype=np.float32)
        vecs = self.encode(items, progress=progress)
        save_arrays_atomic(path, vecs)
        return vecs


def _counting_tokenizer(model):
    """Return a copy of ``model``'s fast tokenizer with truncation and padding off (to count word pieces)."""
    from tokenizers import Tokenizer

    tok = getattr(model, "tokenizer", None)
    tok = getattr(tok, "backend_tokenizer", tok)
    if not isinstance(tok, Tokenizer):
        raise InputError(f"the model's tokenizer is a {type(tok).__name__}, not a fast tokenizer: use a model that has one")
    copy = Tokenizer.from_str(tok.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


def throughput(
    embedder: Embedder, texts: Sequence[str], batch_sizes: Sequence[int], repeats: int = 3, progress: bool = True
) -> list[dict]:
    """Measure texts per second of ``embedder`` at each batch size (median of ``repeats`` runs, after a warm-up)."""
    import statistics
    import time

    from tqdm.auto import tqdm

    items = check_texts(texts)
    if not items or not batch_sizes or min(batch_sizes) < 1:
        raise InputError(f"throughput needs texts and batch sizes >= 1, got {len(items)} texts and {list(batch_sizes)}")
    embedder.encode(items[: max(batch_sizes)], progress=False)  # warm-up
    rows = []
    for bs in tqdm(batch_sizes, desc="batch sizes", disable=not progress):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            embedder.encode(items, batch_size=bs, progress=False)
            times.append(time.perf_counter() - t0)
        rows.append({"batch_size": bs, "texts_per_s": len(items) / statistics.median(times)})
    return rows


def embedding_cache_path(cache_id: str, texts: Sequence[str]) -> Path:
    """Return the cache file for ``texts`` embedded by ``cache_id`` (key: model id and backend + hash of the texts)."""
    h = hashlib.sha256(cache_id.encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest())
    folder = cache_dir() / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{h.hexdigest()[:32]}.npy"


_defaults: dict[tuple[str | None, str], Embedder] = {}


def default_embedder(backend: Backend = "torch", model: str | None = None) -> Embedder:
    """Return a process-wide Embedder for ``model`` (default: all-MiniLM-L6-v2) on ``backend``, loaded on first use."""
    if (model, backend) not in _defaults:
        _defaults[model, backend] = Embedder(model, backend=backend)
    return _defaults[model, backend]


def encode(texts: Sequence[str], batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
    """Embed ``texts`` with the default model; return ``(n, 384)`` float32 unit vectors."""
    return default_embedder().encode(texts, batch_size=batch_size, progress=progress)
