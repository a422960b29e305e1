"""Split long documents into overlapping passages the encoder can read whole, and map passages back to documents.

The model reads at most ``max_seq_length`` word pieces (256 for all-MiniLM-L6-v2, two of them ``[CLS]`` and
``[SEP]``) and silently drops the rest. Passages are cut with the model's own tokenizer, at a paragraph
break where one falls in the second half of the window, else at a sentence or line end, else between
words; each passage repeats the last ``overlap`` word pieces of the one before (from a sentence start
where it can). A document that fits keeps its id; longer ones become ``ID#1``, ``ID#2`` ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from searchkit.corpus.datasets import Corpus
from searchkit.errors import DatasetError, InputError

OVERLAP = 32  # word pieces repeated from the end of one passage at the start of the next
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_PARAGRAPH, _SENTENCE, _WORD, _INSIDE = 2, 1, 0, -1
_ENDS = (".", "!", "?", ":", ";")


def tokenizer_of(embedder) -> tuple[object, int]:
    """Return the embedder's own fast tokenizer (no truncation, no padding) and its window in word pieces."""
    from tokenizers import Tokenizer

    model = embedder.model if hasattr(embedder, "model") else embedder
    tok = getattr(model, "tokenizer", None)
    tok = getattr(tok, "backend_tokenizer", tok)
    if not isinstance(tok, Tokenizer):
        raise InputError(f"{embedder!r} has no fast (tokenizers) tokenizer: chunking needs one to count word pieces")
    window = int(getattr(model, "max_seq_length", None) or getattr(model, "max_length", None) or 256)
    return plain(tok), window


def plain(tokenizer):
    """Return a copy of a ``tokenizers.Tokenizer`` that neither truncates nor pads (the original is untouched)."""
    if tokenizer.truncation is None and tokenizer.padding is None:
        return tokenizer
    tok = type(tokenizer).from_str(tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def _strengths(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Return how good a cut before each token is: paragraph break, sentence end, between words, inside a word.

    A single line break inside hard-wrapped prose is only a space; it counts as a sentence end after
    ``.!?:;`` or before a heading or list item. The break after a heading line is no paragraph break
    (a passage should not end on a heading).
    """
    out = [_PARAGRAPH]
    for (_, prev_end), (start, _) in zip(offsets, offsets[1:]):
        gap = text[prev_end:start]
        ended = text[prev_end - 1 : prev_end] in _ENDS
        if gap.count("\n") >= 2:
            line = text[text.rfind("\n", 0, prev_end) + 1 : prev_end].lstrip()
            out.append(_SENTENCE if line.startswith("#") else _PARAGRAPH)
        elif gap and (ended or ("\n" in gap and text[start : start + 1] in "#-*>|")):
            out.append(_SENTENCE)
        else:
            out.append(_WORD if gap else _INSIDE)
    return out


def split_tokens(strength: Sequence[int], max_tokens: int, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    """Return ``(start, end)`` token ranges of at most ``max_tokens``, cut at the strongest break in each window's second half."""
    if max_tokens < 2 or not 0 <= overlap < max_tokens // 2:
        raise InputError(f"need max_tokens >= 2 and 0 <= overlap < max_tokens/2, got {max_tokens} and {overlap}")
    n, spans, start = len(strength), [], 0
    while True:
        end = min(n, start + max_tokens)
        if end < n:
            # the cut goes before token c; prefer paragraph > sentence > word, then the latest
            cands = [c for c in range(start + max_tokens // 2 + 1, end + 1) if strength[c] >= _WORD]
            end = max(cands, key=lambda c: (strength[c], c)) if cands else end
        spans.append((start, end))
        if end >= n:
            return spans
        if overlap == 0:
            start = end
            continue
        lo = max(start + 1, end - overlap)
        window = range(lo, end)
        start = next((c for c in window if strength[c] >= _SENTENCE), None) or next(
            (c for c in window if strength[c] >= _WORD), lo
        )


def chunk_text(text: str, tokenizer, max_tokens: int, overlap: int = OVERLAP) -> list[str]:
    """Split ``text`` into passages of at most ``max_tokens`` word pieces (one passage if it fits)."""
    enc = plain(tokenizer).encode(text, add_special_tokens=False)
    return _passages(text, enc.offsets, max_tokens, overlap)


def _passages(text: str, offsets: Sequence[tuple[int, int]], max_tokens: int, overlap: int) -> list[str]:
    if len(offsets) <= max_tokens:
        return [text]
    spans = split_tokens(_strengths(text, offsets), max_tokens, overlap)
    return [text[offsets[s][0] : offsets[e - 1][1]] for s, e in spans]


@dataclass
class Passages:
    """The passages of a corpus: ``ids[j]`` and ``texts[j]`` belong to document row ``rows[j]``."""

    ids: list[str]
    texts: list[str]
    rows: list[int]
    whole: list[bool]  # per passage: True when it is the whole document (then a hit shows the document's text)
    _pos: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pos = {pid: j for j, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def documents(self, corpus: Corpus, ids: Sequence[str], scores: Sequence[float], k: int) -> list[tuple]:
        """Return up to ``k`` ``(doc_id, score, text)`` from passage hits (best first): each document once, its best passage."""
        out, seen = [], set()
        for pid, score in zip(ids, scores):
            j = self._pos.get(pid)
            if j is None:
                raise DatasetError(f"passage {pid!r} is not in this corpus: rebuild the index from it")
            row = self.rows[j]
            if row in seen:
                continue
            seen.add(row)
            out.append((corpus.ids[row], float(score), corpus.texts[row] if self.whole[j] else self.texts[j]))
            if len(out) == k:
                break
        return out


def whole_documents(corpus: Corpus) -> Passages:
    """Return one passage per document, the document's embedding text (what an unchunked index holds)."""
    n = len(corpus)
    return Passages(list(corpus.ids), corpus.embedding_texts(), list(range(n)), [True] * n)


def passages_for(corpus: Corpus, embedder) -> Passages | None:
    """Return the passages of a corpus marked ``chunked`` (your own files), or None when every document is one vector."""
    if not corpus.chunked:
        return None
    passages = chunk_corpus(corpus, embedder)
    return None if all(passages.whole) else passages


def chunk_corpus(
    corpus: Corpus, embedder=None, max_tokens: int | None = None, overlap: int = OVERLAP, tokenizer=None
) -> Passages:
    """Split every document's embedding text (``corpus.embedding_texts()``) into passages the model reads whole."""
    if tokenizer is None:
        tokenizer, window = tokenizer_of(embedder)
        max_tokens = max_tokens or window - SPECIAL_TOKENS
    if not max_tokens:
        raise InputError("give max_tokens (word pieces per passage) when passing a tokenizer")
    texts = corpus.embedding_texts()
    encs = plain(tokenizer).encode_batch(texts, add_special_tokens=False)
    ids, out, rows, whole = [], [], [], []
    taken = set(corpus.ids)
    for row, (doc_id, text, enc) in enumerate(zip(corpus.ids, texts, encs)):
        parts = _passages(text, enc.offsets, max_tokens, overlap)
        for j, part in enumerate(parts, 1):
            pid = doc_id if len(parts) == 1 else f"{doc_id}#{j}"
            if len(parts) > 1 and pid in taken:
                raise DatasetError(
                    f"passage id {pid!r} of document {doc_id!r} is also a document id: rename that document"
                )
            ids.append(pid)
            out.append(part)
            rows.append(row)
            whole.append(len(parts) == 1)
    return Passages(ids, out, rows, whole)
