"""Input checks shared by every module: whole numbers, lists of texts, queries. Each error names the value and the fix."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from searchkit.errors import InputError, QueryError, SearchkitError


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


MAX_QUERY_CHARS = 2000  # characters of a query, before and after Unicode normalization


def clean_query(query: object, name: str = "query", max_chars: int | None = MAX_QUERY_CHARS) -> str:
    """Return ``query`` as it is searched (:func:`normalize_query`) if it is a valid query; else raise QueryError.

    The one rule for a query, wherever it comes from (HTTP, the command line, code): a string of at most
    ``max_chars`` characters before and after NFKC (None: no limit) with a visible character once cleaned.
    """
    if not isinstance(query, str):
        raise QueryError("query_type", "{name} must be a string, got {kind}: pass text", name=name,
                         kind=type(query).__name__)  # fmt: skip
    if max_chars is not None and len(query) > max_chars:
        raise QueryError("query_too_long", "{name} has {n} characters; the limit is {limit}: shorten it",
                         name=name, n=len(query), limit=max_chars)  # fmt: skip
    clean = normalize_query(query)  # NFKC; control, invisible characters and lone surrogates become spaces
    if max_chars is not None and len(clean) > max_chars:  # NFKC can make one character many (U+FDFA is 18)
        raise QueryError("query_too_long", "{name} has {n} characters after Unicode normalization (NFKC); the limit "
                         "is {limit}: shorten it", name=name, n=len(clean), limit=max_chars)  # fmt: skip
    if not clean:
        raise QueryError("query_empty", "{name} is empty or whitespace only: type some words to search for", name=name)
    if not any(unicodedata.category(c)[0] not in "ZC" for c in clean):
        raise QueryError("query_invisible", "{name} has no visible character (only joiners or format characters): "
                         "type some words", name=name)  # fmt: skip
    return clean


def check_query(query: object, name: str = "query") -> str:
    """Return ``query`` unchanged if it is a valid query (:func:`clean_query`, no length limit); else InputError."""
    try:
        clean_query(query, name, max_chars=None)
    except QueryError:
        raise InputError(f"{name} must be a non-empty string, got {query!r:.60}") from None
    return query  # type: ignore[return-value]


def check_queries(queries: Sequence[str]) -> list[str]:
    """Return ``queries`` as a list if every one is a valid query (:func:`clean_query`); else name the first bad one."""
    items = list(queries)
    for i, q in enumerate(items):
        try:
            clean_query(q, max_chars=None)
        except QueryError:
            raise InputError(f"query {i} is {q!r:.60}: give a non-empty string") from None
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


# -- the text rule: ids, titles, texts and sessions are valid Unicode, whatever the source ---------------------

_SURROGATES = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> int | None:
    """Return the position of the first surrogate code point in ``text`` (not valid Unicode text), or None."""
    m = _SURROGATES.search(text)
    return None if m is None else m.start()


def clean_text(text: str) -> str:
    """Return ``text`` as valid Unicode: UTF-16 surrogate pairs joined, every lone surrogate replaced by U+FFFD.

    Titles and texts follow this rule (a stray ``"\\ud800"`` costs one character, not the document); ids and
    sessions follow :func:`check_text` instead, since an id must come back exactly as it was given.
    """
    if _SURROGATES.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def check_text(value: str, name: str, fix: str, error: type[SearchkitError] = InputError) -> str:
    """Return ``value`` if it is valid Unicode; else raise InputError naming ``name``, the bad character and ``fix``."""
    at = lone_surrogate(value)
    if at is None:
        return value
    raise error(
        f"{name} {ascii(value)[:60]} holds a lone surrogate (U+{ord(value[at]):04X} at character {at}), "
        f"which is not text: {fix}"
    )


def path_text(name: str) -> str:
    """Return a file name as valid text: bytes of it that are not UTF-8 are written as escapes (``bad\\xffname``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def decode_utf8(blob: bytes, source: object, error: type[SearchkitError] = InputError, *, line: int = 1,
                offset: int = 0) -> str:  # fmt: skip
    """Return ``blob`` as UTF-8 text (a leading BOM dropped); else raise ``error`` naming the line and byte offset.

    ``line`` and ``offset`` say where ``blob`` starts in ``source`` when it is one piece of a file.
    """
    try:
        return blob.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as e:
        at = line + blob.count(b"\n", 0, e.start)
        raise error(
            f"{source}:{at}: not UTF-8 (byte 0x{blob[e.start]:02x} at byte offset {offset + e.start}): save the file "
            "as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > NEW)"
        ) from None


MAX_NUMBER_DIGITS = 4300  # Python's own limit for turning digits into an int


class _LongNumber(ValueError):
    """A JSON integer with more digits than :data:`MAX_NUMBER_DIGITS`."""


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _LongNumber(len(digits.lstrip("-")))
    return int(digits)


def parse_json(text: str | bytes, where: str, fix: str, error: type[SearchkitError] = InputError) -> object:
    """Return the JSON value in ``text``; else raise ``error`` (one line: ``where``, the problem, ``fix``).

    Bounded: a number of over 4,300 digits and nesting past the parser's recursion limit (about 1,000 levels)
    are reported as such, like bad syntax (with its character offset), never as a traceback.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except _LongNumber as e:
        problem = f"a number with {e.args[0]} digits (at most {MAX_NUMBER_DIGITS})"
    except json.JSONDecodeError as e:
        problem = f"not valid JSON ({e.msg} at character {e.pos})"
    except RecursionError:
        problem = "JSON nested too deeply (the parser stops at about 1,000 levels)"
    except UnicodeDecodeError as e:
        problem = f"not UTF-8 (byte offset {e.start})"
    raise error(f"{where}: {problem}: {fix}") from None
