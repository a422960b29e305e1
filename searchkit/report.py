"""Plain-text tables for notebooks, benchmarks and the command line."""

from __future__ import annotations

from collections.abc import Sequence


def _cell(v: object, digits: int) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """Return ``rows`` (dicts) as an aligned text table; floats get ``digits`` decimals."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def print_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> None:
    """Print ``rows`` as an aligned text table."""
    print(format_table(rows, columns, digits))


def side_by_side(engine, query: str, k: int = 5, modes: Sequence[str] = ("bm25", "dense")) -> list[dict]:
    """Return one row per rank with the document id each mode of ``engine`` puts there for ``query``."""
    results = {m: engine.search(query, k=k, mode=m) for m in modes}
    return [
        {"rank": r + 1, **{m: (hits[r].id if r < len(hits) else "-") for m, hits in results.items()}}
        for r in range(k)
    ]
