"""Re-rank the top candidates of any search mode with a cross-encoder (query and document read together).

searchkit ships no cross-encoder: pass a local folder or a hub name (downloaded when online), e.g.
``Reranker("cross-encoder/ms-marco-MiniLM-L-6-v2")``. A cross-encoder scores each (query, document)
pair jointly, which is slower than comparing vectors but often more accurate, so it only re-orders the
first ``depth`` hits of a cheaper retriever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from searchkit.errors import InputError, ModelNotFoundError
from searchkit.validation import check_positive_int, check_query, check_texts


class Reranker:
    """A sentence-transformers ``CrossEncoder`` that scores (query, text) pairs; higher is more relevant."""

    def __init__(self, model: str | Path, max_length: int = 512, batch_size: int = 32, device: str | None = None):
        from sentence_transformers import CrossEncoder

        if not isinstance(model, (str, Path)) or not str(model).strip():
            raise InputError(f"give a cross-encoder as a local folder or a hub name, got {model!r}")
        name = str(model)
        local = Path(name).expanduser()
        looks_local = local.is_absolute() or name.startswith((".", "~")) or local.exists()
        if looks_local and not (local / "config.json").is_file():
            raise ModelNotFoundError(
                f"no cross-encoder at {local}: the folder needs config.json and model weights "
                "(save one with CrossEncoder.save(path)) or pass a hub name such as "
                "'cross-encoder/ms-marco-MiniLM-L-6-v2' while online"
            )
        try:
            self.model = CrossEncoder(str(local) if looks_local else name, max_length=max_length, device=device)
        except OSError as e:
            raise ModelNotFoundError(
                f"could not load cross-encoder {name!r} ({str(e).splitlines()[0]}): check the name, "
                "or download it while online and pass its local folder"
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
            head = reranker.rerank(q, hits[:depth])
            floor = min((h.score for h in head), default=0.0)
            tail = [(h.id, floor - 1.0 - i) for i, h in enumerate(hits[depth:])]
            out.append(([(h.id, h.score) for h in head] + tail)[:k])
        return out

    return search
