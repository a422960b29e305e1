"""Keyword search with BM25 (the bm25s library): the baseline every semantic system must beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .embed import check_texts
from .errors import InputError


class BM25:
    """A BM25 index over ``texts`` (English stop words removed, Snowball stemming optional)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], stem: bool = True, k1: float = 1.5, b: float = 0.75):
        import bm25s
        from bm25s.tokenization import Tokenizer

        texts = check_texts(texts)
        if not texts:
            raise InputError("cannot build BM25 over an empty corpus: give at least one document")
        if len(ids) != len(texts):
            raise InputError(f"got {len(ids)} ids for {len(texts)} texts: give one id per text")
        stemmer = None
        if stem:
            import Stemmer

            stemmer = Stemmer.Stemmer("english")
        self.ids = [str(i) for i in ids]
        self.tokenizer = Tokenizer(stemmer=stemmer, stopwords="en")
        tokens = self.tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(tokens, show_progress=False)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every document for ``query`` (zeros when no query term is known)."""
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"query must be a non-empty string, got {query!r}")
        tokens = self.tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, k: int = 10, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Return up to ``k`` ``(doc_id, score)`` pairs, best first; documents scoring 0 are left out."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        s = self.scores(query)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        k = min(int(k), len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(self.ids[i], float(s[i])) for i in top if s[i] > 0]
