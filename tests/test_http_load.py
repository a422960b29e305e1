"""``benchmarks/http_load.py`` end to end at a tiny size: both apps start, every row and goal line is printed, and
the JSON rows carry the keys the README promises (the benchmark itself runs at 500,000 documents by hand)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "http_load.py"


def test_http_load_runs_both_result_cache_settings_and_writes_its_rows(tmp_path):
    out = tmp_path / "http.json"
    cmd = [sys.executable, str(SCRIPT), "--n-docs", "8000", "--factory", "Flat", "--requests", "30", "--warmup", "5",
           "--clients", "1", "--result-cache", "0", "100", "--json", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(x["scenario"], x["result_cache"]) for x in rows] == [("cold", 0), ("cached", 0), ("cold", 100), ("cached", 100)]
    keys = {"scenario", "clients", "p50_ms", "p95_ms", "p99_ms", "rps", "errors", "backend"}
    assert all(keys <= set(x) and x["errors"] == 0 and x["requests"] == 30 for x in rows), rows
    assert [x["cached_share"] for x in rows] == [0.0, 1.0, 0.0, 1.0]
    with_results = rows[3]
    assert with_results["app_p50_ms"] < rows[1]["app_p50_ms"], rows  # answered whole vs searched again
    assert r.stdout.count("goal 1 client(s) cached p99 <= 2 ms") == 2 and "goal 0 errors: met" in r.stdout
