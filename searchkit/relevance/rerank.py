"""Re-rank the top candidates of any search mode with a cross-encoder (query and document read together).

Train one of your own from the packaged MiniLM weights with
:func:`searchkit.encoders.cross_training.train_cross_encoder` (``python -m searchkit finetune --cross-encoder``)
and load its folder, ``Reranker("/path/to/scifact-cross")``, or pass a hub name (downloaded when online), e.g.
``Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")``. A cross-encoder scores each (query, document)
pair jointly, which is slower than comparing vectors but often more accurate, so it only re-orders the
first ``depth`` hits of a cheaper retriever: ``SearchSettings(rerank_depth=50)`` with ``SearchEngine(...,
reranker=Reranker(DIR))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from searchkit.errors import InputError, ModelNotFoundError
from searchkit.validation import check_positive_int, check_query, check_texts

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def check_cross_encoder_dir(path: str | Path) -> Path:
    """Return ``path`` if it holds a cross-encoder (config.json and weights), else raise ModelNotFoundError."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"no cross-encoder at {folder}: the folder does not exist; train one with "
            "python -m searchkit finetune --cross-encoder --corpus beir:DIR --out FOLDER, or give its folder"
        )
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() and (folder / w).stat().st_size > 0 for w in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ModelNotFoundError(
            f"no cross-encoder at {folder}: the folder needs config.json and model weights, missing "
            f"{', '.join(missing)} (save one with CrossEncoder.save(path), or train it again)"
        )
    return folder


class Reranker:
    """A sentence-transformers ``CrossEncoder`` that scores (query, text) pairs; higher is more relevant."""

    def __init__(
        self, model: str | Path, max_length: int | None = None, batch_size: int = 32, device: str | None = None
    ):  # max_length None: the model's own (a trained searchkit cross-encoder: 256 word pieces)
        from sentence_transformers import CrossEncoder

        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise InputError(f"give a cross-encoder as a local folder or a hub name, got {model!r}")
        name = str(model)
        local = Path(name).expanduser()
        looks_local = local.is_absolute() or name.startswith((".", "~")) or local.exists()
        if looks_local:
            check_cross_encoder_dir(local)
        try:
            self.model = CrossEncoder(str(local) if looks_local else name, max_length=max_length, device=device)
        except Exception as e:  # damaged weights or config: safetensors, JSON and torch errors alike
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ModelNotFoundError(
                f"could not load cross-encoder {name!r} ({first}): its files may be damaged; train or download it "
                "again, or check the name"
            ) from None
        self.name, self.batch_size = name, batch_size

    def __repr__(self) -> str:
        return f"Reranker({self.name!r})"

    def scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Return one relevance score per text for ``query``, shape ``(len(texts),)`` float32."""
        check_query(query)
        texts = check_texts(texts)
        if not texts:
            return np.zeros(0, dtype=np.float32)
        out = self.model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)[:, -1]

    def rerank(self, query: str, hits: Sequence, k: int | None = None) -> list:
        """Return ``hits`` (engine Hits) re-ordered by cross-encoder score (the new ``score``), best first."""
        check_positive_int("k", k, none_ok=True)
        hits = list(hits)
        s = self.scores(query, [f"{h.title} {h.text}".strip() for h in hits])
        order = np.argsort(-s, kind="stable")
        return [replace(hits[i], score=float(s[i])) for i in order][:k]

    def rerank_head(self, query: str, hits: Sequence, depth: int) -> list:
        """Return ``hits`` with the first ``depth`` re-ordered by cross-encoder score; the rest keep their order.

        The tail's scores are shifted below the lowest re-ranked score (rank order kept), so scores fall down the list.
        """
        check_positive_int("depth", depth)
        hits = list(hits)
        head = self.rerank(query, hits[:depth])
        floor = min((h.score for h in head), default=0.0)
        return head + [replace(h, score=floor - 1.0 - i) for i, h in enumerate(hits[depth:])]


def reranked_search(
    engine, reranker: Reranker, mode: str = "hybrid", depth: int = 50
) -> Callable[[list[str], int], list[list[tuple[str, float]]]]:
    """Return ``search(queries, k)`` for :func:`searchkit.relevance.evaluate.evaluate_systems`: ``mode`` top ``depth``, re-ranked.

    Below the re-ranked ``depth`` the original order is kept, so Recall@k for k > depth is unchanged.
    """
    check_positive_int("depth", depth)

    def search(queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        out = []
        for q, hits in zip(queries, engine.search_many(queries, max(k, depth), mode=mode)):
            out.append([(h.id, h.score) for h in reranker.rerank_head(q, hits, depth)][:k])
        return out

    return search
