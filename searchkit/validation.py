"""Input checks shared by every module: whole numbers, lists of texts, queries. Each error names the value and the fix."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from searchkit.errors import InputError


def _integer_kind(minimum: int, maximum: int | None) -> str:
    if maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    return {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer of at least {minimum}")


def check_positive_int(
    name: str, value: object, *, minimum: int = 1, maximum: int | None = None, none_ok: bool = False, hint: str = ""
) -> int | None:
    """Return ``value`` as an int if it is a whole number in ``[minimum, maximum]`` (None too when ``none_ok``).

    Otherwise raise InputError: ``"k must be a positive integer, got 0"``; ``hint`` is added in parentheses.
    """
    if value is None and none_ok:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if ok and minimum <= value and (maximum is None or value <= maximum):  # type: ignore[operator]
        return int(value)  # type: ignore[arg-type]
    kind = _integer_kind(minimum, maximum) + (" or None" if none_ok else "")
    raise InputError(f"{name} must be {kind}, got {value!r}" + (f" ({hint})" if hint else ""))


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, or raise InputError naming the first item that is not a string."""
    if isinstance(texts, (str, bytes)):
        raise InputError(f"expected a list of strings, got a single {type(texts).__name__}: wrap it as [text]")
    try:
        items = list(texts)
    except TypeError:
        raise InputError(f"expected a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"texts[{i}] is {t!r} ({type(t).__name__}), not a string: pass strings only")
    return items


def check_query(query: object, name: str = "query") -> str:
    """Return ``query`` if it is a string with a non-space character; else raise InputError naming it."""
    if not isinstance(query, str) or not query.strip():
        raise InputError(f"{name} must be a non-empty string, got {query!r}")
    return query


def check_queries(queries: Sequence[str]) -> list[str]:
    """Return ``queries`` as a list if every one is a string with a non-space character; else name the first bad one."""
    items = list(queries)
    for i, q in enumerate(items):
        if not isinstance(q, str) or not q.strip():
            raise InputError(f"query {i} is {q!r}: give a non-empty string")
    return items


# Invisible characters dropped like control characters: zero-width space, BOM, bidi embeddings, overrides and
# isolates. ZWNJ and ZWJ (U+200C, U+200D) stay: emoji sequences and Persian or Indic words need them.
INVISIBLE = frozenset("\u200b\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def normalize_query(text: str) -> str:
    """Return ``text`` in canonical form: Unicode NFKC, control and invisible characters dropped, whitespace collapsed."""
    if not isinstance(text, str):
        raise InputError(f"query must be a string, got {type(text).__name__}: pass text")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(" " if c in INVISIBLE or unicodedata.category(c) in ("Cc", "Cs") else c for c in text)
    return " ".join(text.split())


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


def check_ids_match(ids: Sequence, xb: np.ndarray) -> None:
    """Raise InputError unless there is exactly one id per row of ``xb``."""
    if len(ids) != len(xb):
        raise InputError(f"got {len(ids)} ids for {len(xb)} vectors: give exactly one id per vector")


def check_id_list(ids: Iterable[str]) -> list[str]:
    """Return ``ids`` as a list of strings; a single string is refused (it would iterate as characters)."""
    if isinstance(ids, str):
        raise InputError(f"give a list of document ids, not the single string {ids!r}: e.g. [{ids!r}]")
    return [str(i) for i in ids]


def first_duplicate(ids: Sequence[str]) -> str | None:
    """Return the first id that appears twice in ``ids``, or None."""
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None
