"""docs/finetune.json, the full-size figures notebook 09 prints: its format, and every figure a fraction."""

from __future__ import annotations

import json
import re
from pathlib import Path

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "finetune.json"
METRICS = ("ndcg@10", "recall@100", "mrr@10")


def check_figures(data: dict) -> list[str]:
    """Return what is wrong with the figures file's contents (nothing: an empty list)."""
    problems = [f"missing key {k!r}" for k in ("about", "commands", "rows") if k not in data]
    if problems:
        return problems
    if not data["commands"] or not all(isinstance(c, str) and c.startswith("python ") for c in data["commands"]):
        problems.append("commands must list the 'python ...' command lines that measured the rows")
    if not data["rows"]:
        problems.append("no rows")
    for i, row in enumerate(data["rows"]):
        if not isinstance(row.get("data"), str) or not isinstance(row.get("system"), str):
            problems.append(f"row {i}: needs 'data' and 'system' strings")
        for m in METRICS:
            v = row.get(m, "absent")
            if not (v is None or (isinstance(v, (int, float)) and 0 <= v <= 1)):
                problems.append(f"row {i}: {m} = {v!r}, expected a number from 0 to 1 or null")
        if not re.fullmatch(r"\[\d\.\d{3}, \d\.\d{3}\]", str(row.get("ci95"))):
            problems.append(f"row {i}: ci95 = {row.get('ci95')!r}, expected '[low, high]' with 3 decimals")
    return problems


def test_the_figures_file_is_well_formed():
    assert check_figures(json.loads(FIGURES.read_text())) == []


def test_the_format_check_can_fail():
    good = {"about": "x", "commands": ["python benchmarks/finetune.py"],
            "rows": [{"data": "d", "system": "s", "ndcg@10": 0.7, "recall@100": None, "mrr@10": 0.6, "ci95": "[0.650, 0.750]"}]}
    assert check_figures(good) == []
    bad = json.loads(json.dumps(good))
    bad["rows"][0]["ndcg@10"] = 70
    bad["rows"][0]["ci95"] = "0.65-0.75"
    assert len(check_figures(bad)) == 2
    assert check_figures({"rows": []}) == ["missing key 'about'", "missing key 'commands'"]
