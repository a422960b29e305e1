"""Interleaving: team-draft merging of two rankings, a click model of a simulated user, and the offline rehearsal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.relevance.metrics import (
    ranked,
    sign_test,
)
from searchkit.validation import check_positive_int


def team_draft(a: Sequence[str], b: Sequence[str], k: int, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """Interleave rankings ``a`` and ``b`` (Radlinski et al. 2008); return the list and each slot's team (0=A, 1=B).

    In each round the team with fewer picks (a coin flip on a tie) adds its best document not yet shown.
    """
    shown: list[str] = []
    team: list[int] = []
    seen: set[str] = set()
    pos = [0, 0]
    lists = (list(a), list(b))
    picks = [0, 0]

    def next_new(t: int) -> str | None:
        while pos[t] < len(lists[t]) and lists[t][pos[t]] in seen:
            pos[t] += 1
        return lists[t][pos[t]] if pos[t] < len(lists[t]) else None

    while len(shown) < k:
        first = 0 if picks[0] < picks[1] or (picks[0] == picks[1] and rng.random() < 0.5) else 1
        for t in (first, 1 - first):  # if a team has run out, the other one picks
            d = next_new(t)
            if d is not None:
                shown.append(d)
                team.append(t)
                seen.add(d)
                picks[t] += 1
                break
        else:
            break
    return shown, team


@dataclass
class ClickModel:
    """A cascade user: scans top-down, clicks with ``click[grade]``, stops after a click with ``stop[grade]``,
    and moves on to the next result with probability ``patience`` (below 1: lower ranks are seen less often)."""

    click: tuple[float, ...] = (0.05, 0.5, 0.8, 0.95)  # P(click | grade 0, 1, 2, 3+)
    stop: tuple[float, ...] = (0.0, 0.5, 0.7, 0.9)  # P(stop | clicked, grade)
    patience: float = 1.0  # P(look at the next result | did not stop here)

    def _grades(self, docs: Sequence[str], judged: Mapping[str, int]) -> np.ndarray:
        return np.array([min(max(int(judged.get(d, 0)), 0), len(self.click) - 1) for d in docs], dtype=np.int64)

    def clicks(self, docs: Sequence[str], judged: Mapping[str, int], rng: np.random.Generator) -> list[int]:
        """Return the positions the simulated user clicks in ``docs``."""
        out = []
        for i, g in enumerate(self._grades(docs, judged)):
            if rng.random() < self.click[g]:
                out.append(i)
                if rng.random() < self.stop[min(g, len(self.stop) - 1)]:
                    break
            if self.patience < 1 and rng.random() >= self.patience:
                break
        return out

    def click_matrix(self, docs: Sequence[str], judged: Mapping[str, int], n: int, rng: np.random.Generator) -> np.ndarray:
        """Simulate ``n`` users on the same page at once; return an ``(n, len(docs))`` boolean array of clicks."""
        g = self._grades(docs, judged)
        p_click = np.asarray(self.click, dtype=np.float64)[g]
        p_stop = np.asarray(self.stop, dtype=np.float64)[np.minimum(g, len(self.stop) - 1)]
        looking = np.ones(n, dtype=bool)
        out = np.zeros((n, len(g)), dtype=bool)
        for i in range(len(g)):
            out[:, i] = looking & (rng.random(n) < p_click[i])
            looking &= ~(out[:, i] & (rng.random(n) < p_stop[i])) & (rng.random(n) < self.patience)
        return out


@dataclass
class InterleavingResult:
    """Outcome of interleaving A and B: impressions won by each, ties, and a sign-test p-value."""

    a: str
    b: str
    wins_a: int
    wins_b: int
    ties: int
    p_value: float

    @property
    def impressions(self) -> int:
        """Return the number of simulated result pages."""
        return self.wins_a + self.wins_b + self.ties

    @property
    def preference(self) -> float:
        """Return (wins A - wins B) / impressions, in [-1, 1]: > 0 means users prefer A."""
        return (self.wins_a - self.wins_b) / max(self.impressions, 1)

    def __str__(self) -> str:
        n = max(self.impressions, 1)
        return (
            f"{self.a} wins {self.wins_a / n:.1%}, {self.b} wins {self.wins_b / n:.1%}, ties {self.ties / n:.1%} "
            f"of {self.impressions} impressions (preference {self.preference:+.3f}, p={self.p_value:.3g})"
        )


def interleave(
    run_a: Mapping,
    run_b: Mapping,
    qrels: Mapping[str, Mapping[str, int]],
    k: int = 10,
    impressions: int = 10,
    seed: int = 0,
    click_model: ClickModel | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> InterleavingResult:
    """Simulate ``impressions`` team-draft interleaved pages per judged query; count which system gets more clicks.

    Each page shows the top ``k`` of the interleaved list; a simulated user (``click_model``) clicks on
    it; the team with more clicked documents wins that page. The p-value is a two-sided sign test on
    the pages won (ties left out).
    """
    check_positive_int("k", k)
    check_positive_int("impressions", impressions)
    model = click_model or ClickModel()
    rng = np.random.default_rng(seed)
    wins = [0, 0, 0]
    qids = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    for q in qids:
        a, b = ranked(run_a.get(q, [])), ranked(run_b.get(q, []))
        for _ in range(impressions):
            shown, team = team_draft(a, b, k, rng)
            clicked = model.clicks(shown, qrels[q], rng)
            ca = sum(team[i] == 0 for i in clicked)
            cb = len(clicked) - ca
            wins[0 if ca > cb else 1 if cb > ca else 2] += 1
    p = float(sign_test(wins[0], wins[1]))
    return InterleavingResult(names[0], names[1], wins[0], wins[1], wins[2], p)
