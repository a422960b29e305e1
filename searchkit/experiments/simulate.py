"""Simulated users for online experiments: a live run over HTTP, and power analysis on fixed rankings.

A simulated user issues one judged query, looks at the results top-down with a position-biased cascade
click model fed by the relevance judgments (:class:`searchkit.relevance.evaluate.ClickModel`), and clicks. Each user
is one session with one query, so sessions and queries coincide here (the notebook discusses when they don't).

Power analysis: both systems are deterministic, so their rankings are fetched once; each impression then
draws a random query and a random user. A whole experiment of ``n`` impressions is therefore a binomial
(split) or multinomial (interleaving) draw from per-impression probabilities estimated once, and thousands
of repeated experiments cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.engine import SearchEngine
from searchkit.errors import ExperimentError, InputError
from searchkit.experiments.arms import Arm, assign, interleaving_rng, search_arm, summarize
from searchkit.relevance import metrics
from searchkit.relevance.interleave import ClickModel, team_draft
from searchkit.validation import check_positive_int, normalize_query

Rankings = Mapping[str, Sequence[str]]  # query id -> ranked doc ids
USER = ClickModel(patience=0.8)  # the simulated user of the course: looks one rank further with probability 0.8


def arm_rankings(engine: SearchEngine, arms: Sequence[Arm], queries: Mapping[str, str], k: int = 10) -> list[dict]:
    """Return each arm's ranked ids ``{query_id: [doc ids]}`` for ``queries`` (one call per query, as the app does).

    With a query cache on the engine, the queries are embedded once, in one batch, and every later search,
    the app's included when it shares the cache, reuses those very vectors.
    """
    texts = {q: normalize_query(t) for q, t in queries.items()}
    if engine.cache is not None:
        engine.encode_queries(list(texts.values()))
    return [{q: [h.id for h in search_arm(engine, arm, t, k)] for q, t in texts.items()} for arm in arms]


@dataclass
class Rates:
    """Per-impression outcome probabilities, averaged over queries: what an experiment samples from."""

    ctr: tuple[float, float]  # split: P(at least one click) under arm A, under arm B
    interleave: tuple[float, float, float, float]  # P(A wins), P(B wins), P(tie with clicks), P(no click)
    queries: int

    def mix(self, other: Rates, weight: float) -> Rates:
        """Return ``weight`` of these rates plus ``1 - weight`` of ``other`` (a smaller effect of the same kind)."""
        w = float(weight)
        f = lambda a, b: tuple(w * x + (1 - w) * y for x, y in zip(a, b))  # noqa: E731
        return Rates(f(self.ctr, other.ctr), f(self.interleave, other.interleave), self.queries)  # type: ignore[arg-type]

    @property
    def better(self) -> int:
        """Return the truly better arm by CTR (0 or 1)."""
        return int(self.ctr[1] > self.ctr[0])


def estimate_rates(run_a: Rankings, run_b: Rankings, qrels: Mapping[str, Mapping[str, int]], k: int = 10,
                   user: ClickModel = USER, sims: int = 400, seed: int = 0) -> Rates:  # fmt: skip
    """Estimate :class:`Rates` for arms ``run_a`` and ``run_b`` by simulating ``sims`` users per judged query."""
    rng = np.random.default_rng(seed)
    qids = sorted(q for q, j in qrels.items() if any(g > 0 for g in j.values()) and q in run_a)
    if not qids:
        raise InputError("no judged query is in the rankings: fetch the rankings of the judged queries")
    ctr, inter = np.zeros(2), np.zeros(4)
    for q in qids:
        a, b = list(run_a[q])[:k], list(run_b[q])[:k]
        for i, docs in enumerate((a, b)):
            ctr[i] += user.click_matrix(docs, qrels[q], sims, rng).any(axis=1).mean()
        pages: dict[tuple, int] = {}
        for _ in range(sims):
            shown, team = team_draft(a, b, k, rng)
            pages[(tuple(shown), tuple(team))] = pages.get((tuple(shown), tuple(team)), 0) + 1
        for (shown, team), n in pages.items():
            clicks = user.click_matrix(shown, qrels[q], n, rng)
            on_b = clicks[:, np.array(team, dtype=bool)].sum(axis=1)
            on_a = clicks.sum(axis=1) - on_b
            inter += [(on_a > on_b).sum(), (on_b > on_a).sum(), ((on_a == on_b) & (on_a > 0)).sum(), (on_a + on_b == 0).sum()]
    ctr, inter = ctr / len(qids), inter / (len(qids) * sims)
    if all(list(run_a[q])[:k] == list(run_b[q])[:k] for q in qids):  # A/A: equal by construction, not by estimate
        ctr[:] = ctr.mean()
        inter[:2] = inter[:2].mean()
    return Rates((float(ctr[0]), float(ctr[1])), tuple(float(x) for x in inter), len(qids))  # type: ignore[arg-type]


def p_values(rates: Rates, design: str, n: int, runs: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run ``runs`` simulated experiments of ``n`` impressions; return each one's p-value and observed direction.

    The direction is 1 where arm B looked better, 0 where arm A did, -1 on an exact tie.
    """
    check_positive_int("n", n, minimum=2, hint="impressions per simulated experiment")
    rng = np.random.default_rng(seed)
    if design == "split":
        na, nb = n // 2, n - n // 2  # sessions are split evenly by the hash, in expectation
        xa, xb = rng.binomial(na, rates.ctr[0], runs), rng.binomial(nb, rates.ctr[1], runs)
        p = np.asarray(metrics.two_proportion_test(xb, nb, xa, na).p_value)
        diff = xb / nb - xa / na
    elif design == "interleave":
        w = rng.multinomial(n, rates.interleave, size=runs)
        p, diff = np.asarray(metrics.sign_test(w[:, 1], w[:, 0])), w[:, 1] - w[:, 0]
    else:
        raise ExperimentError(f"unknown experiment design {design!r}: choose split or interleave")
    return p, np.where(diff > 0, 1, np.where(diff < 0, 0, -1))


def power(rates: Rates, design: str, n: int, alpha: float = 0.05, runs: int = 2000, seed: int = 0) -> float:
    """Return the share of ``runs`` experiments of ``n`` impressions that find the better arm at ``p < alpha``."""
    p, direction = p_values(rates, design, n, runs, seed)
    return float(np.mean((p < alpha) & (direction == rates.better)))


def false_positive_rate(rates: Rates, design: str, n: int, alpha: float = 0.05, runs: int = 2000, seed: int = 0) -> float:
    """Return the share of ``runs`` experiments with ``p < alpha`` (use A/A rates: every detection is false)."""
    return float(np.mean(p_values(rates, design, n, runs, seed)[0] < alpha))


def peeking_false_positive_rate(null: Rates, design: str, n: int, looks: int = 20, alpha: float = 0.05,
                                runs: int = 2000, seed: int = 0) -> float:  # fmt: skip
    """Return how often an A/A experiment is declared significant when p is checked ``looks`` times on the way
    to ``n`` impressions, stopping at the first p < ``alpha`` (peeking); without peeking it would be ``alpha``."""
    check_positive_int("looks", looks)
    rng = np.random.default_rng(seed)
    step = max(n // looks, 2)
    found = np.zeros(runs, dtype=bool)
    totals = np.zeros((runs, 4 if design == "interleave" else 2), dtype=np.int64)
    for look in range(1, looks + 1):
        if design == "split":
            totals += np.stack([rng.binomial(step // 2, null.ctr[i], runs) for i in (0, 1)], axis=1)
            half = look * (step // 2)
            p = metrics.two_proportion_test(totals[:, 1], half, totals[:, 0], half).p_value
        else:
            totals += rng.multinomial(step, null.interleave, size=runs)
            p = metrics.sign_test(totals[:, 1], totals[:, 0])
        found |= np.asarray(p) < alpha
    return float(found.mean())


def queries_needed(rates: Rates, design: str, target: float = 0.8, alpha: float = 0.05, runs: int = 2000,
                   seed: int = 0, limit: int = 10_000_000) -> int | None:  # fmt: skip
    """Return the fewest impressions (queries) at which ``power`` reaches ``target`` (within 2%); None past ``limit``."""
    lo, hi = 1, 16
    while power(rates, design, hi, alpha, runs, seed) < target:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > max(1, lo // 50):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if power(rates, design, mid, alpha, runs, seed) >= target else (mid, hi)
    return hi


def power_curve(rates: Rates, null: Rates, weights: Sequence[float] = (0.1, 0.25, 0.5, 1.0), **kw) -> list[dict]:
    """Return queries needed by split and interleaving as the effect shrinks: rates mixed with A/A ``null`` rates."""
    rows = []
    for w in weights:
        r = rates.mix(null, w)
        rows.append({"weight": float(w), "ctr_diff": r.ctr[1] - r.ctr[0],
                     "split": queries_needed(r, "split", **kw), "interleave": queries_needed(r, "interleave", **kw)})  # fmt: skip
    return rows


# -- a live run over HTTP ------------------------------------------------------------------------------------


def run_users(url: str, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]], n_users: int,
              k: int = 10, user: ClickModel = USER, repeat: float = 0.1, seed: int = 0) -> list[dict]:  # fmt: skip
    """Send ``n_users`` simulated users to the app at ``url``: each searches one judged query and clicks.

    A share ``repeat`` of the clicks is sent twice (the app must count them once). Return one record per
    user: session, query id, impression id, the ids shown and the ids clicked.
    """
    import httpx

    rng = np.random.default_rng(seed)
    qids = sorted(q for q in queries if any(g > 0 for g in qrels.get(q, {}).values()))
    records = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(n_users):
            q = qids[int(rng.integers(len(qids)))]
            session = f"user-{seed}-{i}"
            r = client.post("/search", json={"query": queries[q], "top_k": k, "session": session})
            r.raise_for_status()
            body = r.json()
            shown = [h["id"] for h in body["results"]]
            clicked = [shown[j] for j in np.flatnonzero(user.click_matrix(shown, qrels[q], 1, rng)[0])]
            for d in clicked + [d for d in clicked if rng.random() < repeat]:
                client.post("/click", json={"impression_id": body["impression_id"], "id": d}).raise_for_status()
            records.append({"session": session, "query": q, "impression_id": body["impression_id"],
                            "shown": shown, "clicked": clicked})  # fmt: skip
    return records


def expected_summary(records: Sequence[dict], design: str, arms: Sequence[Arm], rankings: Sequence[Rankings],
                     k: int = 10) -> dict:  # fmt: skip
    """Recompute, from the simulator's own records and the arms' rankings, what ``GET /experiment`` should say.

    Split: each session's arm comes from the same stable hash. Interleave: each page is drawn again from
    the rankings with the impression's coin flips; a page that differs from what the app showed is an error.
    """
    salt = ",".join(f"{a.name}={a.label}" for a in arms)
    clicks = sum(len(r["clicked"]) for r in records)
    counts: dict = {"impressions": len(records), "clicks": clicks}
    if design == "split":
        per = [{"impressions": 0, "clicked": 0, "clicks": 0} for _ in arms]
        for r in records:
            c = per[assign(r["session"], salt)]
            c["impressions"] += 1
            c["clicked"] += bool(r["clicked"])
            c["clicks"] += len(r["clicked"])
        return summarize(design, arms, {**counts, "arms": per})
    wins, team_clicks, ties, clicked = [0, 0], [0, 0], 0, 0
    for r in records:
        a, b = (list(run[r["query"]])[:k] for run in rankings)
        shown, team = team_draft(a, b, k, interleaving_rng(r["impression_id"]))
        if shown != r["shown"]:
            raise ExperimentError(f"impression {r['impression_id']} showed {r['shown'][:3]}..., expected {shown[:3]}...")
        on = [sum(team[shown.index(d)] == t for d in r["clicked"]) for t in (0, 1)]
        team_clicks = [team_clicks[0] + on[0], team_clicks[1] + on[1]]
        if r["clicked"]:
            clicked += 1
            if on[0] == on[1]:
                ties += 1
            else:
                wins[int(on[1] > on[0])] += 1
    return summarize(design, arms, {**counts, "wins": wins, "ties": ties, "clicked": clicked, "team_clicks": team_clicks})


def live_run(engine: SearchEngine, arms: Sequence[Arm], design: str, queries: Mapping[str, str],
             qrels: Mapping[str, Mapping[str, int]], rankings: Sequence[Rankings], n_users: int, events: str,
             k: int = 10, seed: int = 0) -> tuple[dict, dict]:  # fmt: skip
    """Serve ``engine`` with an experiment on a loopback port, send ``n_users`` simulated users over HTTP.

    Return ``(app, simulator)``: the app's ``GET /experiment`` answer and what the simulator expects it to be.
    The app shares the engine's query cache, so both see the same query vectors as ``rankings``.
    """
    import httpx

    from searchkit.experiments.live import Experiment
    from searchkit.serving.server import serve_in_background

    exp = Experiment(arms, design, events, seed=seed)
    srv = serve_in_background(engine, cache=engine.cache, experiment=exp)
    try:
        records = run_users(srv.url, queries, qrels, n_users, k=k, seed=seed)
        app = httpx.get(f"{srv.url}/experiment", timeout=60).json()
    finally:
        srv.stop()
        exp.close()
    return app, expected_summary(records, design, arms, rankings, k)
