"""Plain-text tables for notebooks, benchmarks and the command line: one formatter, :func:`format_table`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Digits = int | Mapping[str, int]


def _cell(v: object, digits: int) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def _as_dict(row: Any) -> dict:
    """Return a row as a dict: dicts as they are, objects through their ``row()`` method (e.g. OperatingPoint)."""
    return row if isinstance(row, Mapping) else row.row()


def format_table(
    rows: Sequence[Any], columns: Sequence[str] | None = None, digits: Digits = 3, markdown: bool = False
) -> str:
    """Return ``rows`` (dicts, or objects with ``row()``) as an aligned text or Markdown table.

    Floats get ``digits`` decimals (or ``digits[column]``, 3 for columns not named); numbers align right.
    """
    if not rows:
        return "(no rows)"
    dicts = [_as_dict(r) for r in rows]
    columns = list(columns or dicts[0].keys())
    places = [digits if isinstance(digits, int) else digits.get(c, 3) for c in columns]
    cells = [[_cell(r.get(c), d) for c, d in zip(columns, places)] for r in dicts]
    if markdown:
        head = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join([*head, *("| " + " | ".join(r) + " |" for r in cells)])
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in dicts) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def print_table(rows: Sequence[Any], columns: Sequence[str] | None = None, digits: Digits = 3) -> None:
    """Print ``rows`` as an aligned text table (see :func:`format_table`)."""
    print(format_table(rows, columns, digits))


def side_by_side(engine, query: str, k: int = 5, modes: Sequence[str] = ("bm25", "dense")) -> list[dict]:
    """Return one row per rank with the document id each mode of ``engine`` puts there for ``query``."""
    results = {m: engine.search(query, k=k, mode=m) for m in modes}
    return [
        {"rank": r + 1, **{m: (hits[r].id if r < len(hits) else "-") for m, hits in results.items()}}
        for r in range(k)
    ]
