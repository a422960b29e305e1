"""Online experiments with simulated users: a live run over HTTP, then power analysis for split vs interleaving.

    python benchmarks/ab_sim.py                                    # pydocs, control=bm25 vs treatment=dense
    python benchmarks/ab_sim.py --experiment control=dense,treatment=hybrid
    python benchmarks/ab_sim.py --dataset ../shared/beir/scifact --experiment control=bm25,treatment=hybrid:zscore

A simulated user issues one judged query, scans the results with a position-biased cascade click model fed
by the judgments (searchkit.experiments.simulate.USER) and clicks. The live run sends ``--users`` users to the app with
the experiment on (each design in turn) and checks that the app's GET /experiment equals what the simulator
computes from its own records. The power analysis works on each arm's rankings fetched once: it prints the
queries each design needs to find the better arm at p < 0.05 in >= 80% of ``--runs`` repeated experiments,
the A/A false-positive rate, and the queries needed as the effect shrinks (``--plot`` saves that curve).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.config import quick  # noqa: E402
from searchkit.corpus.loaders import load_dataset  # noqa: E402
from searchkit.experiments import simulate as S  # noqa: E402
from searchkit.experiments.arms import parse_arms  # noqa: E402
from searchkit.measure.report import format_table  # noqa: E402
from searchkit.serving.cache import LRUCache  # noqa: E402
from searchkit.startup import load_engine  # noqa: E402
from searchkit.threads import set_compute_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pydocs", help="'pydocs' or a folder in the BEIR layout (default: pydocs)")
    p.add_argument("--experiment", default="control=bm25,treatment=dense", help="two arms NAME=MODE[:FUSION]")
    p.add_argument("--users", type=int, default=100 if quick() else 300, help="simulated users per live run")
    p.add_argument("--runs", type=int, default=2000, help="repeated experiments per power estimate (default 2000)")
    p.add_argument("--sims", type=int, default=400, help="simulated users per query to estimate click rates")
    p.add_argument("--plot", default=None, help="save the power curve as this PNG")
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    arms = parse_arms(a.experiment)
    spec = a.dataset if a.dataset == "pydocs" else f"beir:{a.dataset}"
    ds = load_dataset(spec)
    engine = load_engine(spec)
    set_compute_threads(1)
    engine.cache = LRUCache(100_000)
    queries = ds.judged_queries()
    rankings = S.arm_rankings(engine, arms, queries)
    print(f"dataset {ds.name}: {len(ds.corpus)} documents, {len(queries)} judged queries; arms "
          f"{arms[0].name}={arms[0].label} vs {arms[1].name}={arms[1].label}; setup {time.perf_counter() - t0:.0f} s")

    print(f"\n## Live run over HTTP: {a.users} simulated users per design")
    rows, ok = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for design in ("interleave", "split"):
            t = time.perf_counter()
            app, sim = S.live_run(engine, arms, design, queries, ds.qrels, rankings, a.users, f"{tmp}/{design}.db")
            same = app == sim
            ok &= same
            stat = app["preference"] if design == "interleave" else app["difference"]
            rows.append({"design": design, "impressions": app["impressions"], "clicks": app["clicks"],
                         "effect": stat["value"] if design == "interleave" else stat["ctr"],
                         "p_value": stat["p_value"], "app == simulator": "yes" if same else "NO",
                         "seconds": time.perf_counter() - t})  # fmt: skip
    print(format_table(rows))
    print(f"goal: the app's counters and statistics equal the simulator's: {'met' if ok else 'NOT met'}")

    print(f"\n## Power analysis: {a.runs} simulated experiments per point, p < 0.05, power 80%")
    rates = S.estimate_rates(rankings[0], rankings[1], ds.qrels, sims=a.sims)
    null = S.estimate_rates(rankings[0], rankings[0], ds.qrels, sims=a.sims, seed=1)
    print(f"CTR {arms[0].name} {rates.ctr[0]:.3f}, {arms[1].name} {rates.ctr[1]:.3f}; interleaving: "
          f"{arms[0].name} wins {rates.interleave[0]:.3f}, {arms[1].name} wins {rates.interleave[1]:.3f}, "
          f"ties {rates.interleave[2]:.3f}, no click {rates.interleave[3]:.3f} of impressions")
    need = {d: S.queries_needed(rates, d, runs=a.runs) for d in ("split", "interleave")}
    n_aa = max((v for v in need.values() if v), default=1000)
    fpr = {d: S.false_positive_rate(null, d, n_aa, runs=a.runs * 2) for d in need}
    print(format_table([{"design": d, "queries needed": need[d] or "over 10 million", f"A/A false positives at n={n_aa}": fpr[d]}
                        for d in need]))  # fmt: skip
    if need["split"] and need["interleave"]:
        print(f"interleaving needs {need['split'] / need['interleave']:.1f}x fewer queries than a split")
    curve = S.power_curve(rates, null, runs=a.runs)
    print("\nqueries needed as the effect shrinks (share of the full difference kept):")
    print(format_table(curve))
    if a.plot:
        S.plot_power_curve(curve).savefig(a.plot, dpi=100)
        print(f"saved {a.plot}")
    aa_ok = all(0.03 <= v <= 0.07 for v in fpr.values())
    print(f"goal: A/A false-positive rate near 5% (3-7%): {'met' if aa_ok else 'NOT met'} "
          f"({', '.join(f'{d} {v:.3f}' for d, v in fpr.items())})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
