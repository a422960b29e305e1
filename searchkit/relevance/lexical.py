"""Keyword search with BM25 (the bm25s library): the baseline every semantic system must beat."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from searchkit.errors import InputError
from searchkit.validation import check_positive_int, check_query, check_texts

BM25_METHODS: tuple[str, ...] = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class BM25:
    """A BM25 index over ``texts`` (English stop words removed, Snowball stemming optional)."""

    def __init__(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        stem: bool = True,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
    ):
        import bm25s
        from bm25s.tokenization import Tokenizer

        texts = check_texts(texts)
        if not texts:
            raise InputError("cannot build BM25 over an empty corpus: give at least one document")
        if len(ids) != len(texts):
            raise InputError(f"got {len(ids)} ids for {len(texts)} texts: give one id per text")
        if not (isinstance(k1, (int, float)) and k1 >= 0 and isinstance(b, (int, float)) and 0 <= b <= 1):
            raise InputError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1!r}, b={b!r}: try k1=1.2-2.0, b=0.75")
        if method not in BM25_METHODS:
            raise InputError(f"unknown BM25 variant {method!r}: choose one of {', '.join(BM25_METHODS)}")
        stemmer = None
        if stem:
            import Stemmer

            stemmer = Stemmer.Stemmer("english")
        self.ids = [str(i) for i in ids]
        self.stem, self.k1, self.b, self.method = stem, float(k1), float(b), method
        self.tokenizer = Tokenizer(stemmer=stemmer, stopwords=stopwords)
        self._stem_lock = threading.Lock()  # a PyStemmer object must not be called from two threads at once
        self._stopwords = frozenset(self.tokenizer.stopwords or ())
        tokens = self.tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False)
        # bm25s gives word-less documents the token "" (id below); a query must never match on it.
        self._empty = self.tokenizer.word_to_id.get("")
        if len(self.tokenizer.word_to_id) - (self._empty is not None) == 0:
            raise InputError(
                f"none of the {len(texts)} documents contains a searchable word (all empty or stop words): "
                "check that the corpus texts were loaded"
            )
        self.model = bm25s.BM25(k1=k1, b=b, method=method)
        self.model.index(tokens, show_progress=False)

    def __repr__(self) -> str:
        return f"BM25({len(self)} docs, k1={self.k1}, b={self.b}, stem={self.stem}, method={self.method!r})"

    def __len__(self) -> int:
        return len(self.ids)

    def _query_tokens(self, query: str) -> list[int]:
        """Return the vocabulary ids of the words of ``query``, read-only (same ids as bm25s's tokenizer).

        bm25s's tokenizer stores the stem of every word it is shown, even with ``update_vocab=False``: a stream
        of new query words grew memory without bound, and it calls the PyStemmer object, which must not run in
        two threads at once, from every request thread. Here nothing is stored and stemming holds a lock.
        """
        tok = self.tokenizer
        out = []
        for word in tok.splitter(query.lower() if tok.lower else query):
            wid = tok.word_to_id.get(word)
            if wid is None and tok.stemmer is not None and word not in self._stopwords:
                with self._stem_lock:
                    stem = tok.stemmer(word)
                wid = tok.stem_to_sid.get(stem)
            if wid is not None and wid != self._empty:
                out.append(wid)
        return out

    def scores(self, query: str) -> np.ndarray:
        """Return the BM25 score of every document for ``query`` (zeros when no query term is known)."""
        check_query(query)
        tokens = self._query_tokens(query)
        if not tokens:  # no query word is in the vocabulary: nothing matches
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self.model.get_scores(tokens), dtype=np.float32)

    def search(self, query: str, k: int = 10, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Return up to ``k`` ``(doc_id, score)`` pairs, best first; documents scoring 0 are left out."""
        check_positive_int("k", k)
        s = self.scores(query)
        if mask is not None:
            s = np.where(mask, s, 0.0)
        k = min(int(k), len(s))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return [(self.ids[i], float(s[i])) for i in top if s[i] > 0]
