"""A running experiment: each request assigned to an arm, its impression and clicks stored, the summary on demand."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from searchkit.engine import Hit
from searchkit.errors import ExperimentError
from searchkit.experiments.arms import Arm, assign, check_design, interleaving_rng, new_session, parse_arms, summarize
from searchkit.experiments.events import EventStore
from searchkit.relevance.interleave import team_draft


class Experiment:
    """An experiment between two arms with a design and an event store; answers searches and records clicks.

    With ``seed``, impression ids (and so the interleavings) repeat from run to run: for teaching and tests.
    """

    def __init__(self, arms: Sequence[Arm] | str, design: str, events: str | Path, seed: int | None = None,
                 max_bytes: int | None = None):  # fmt: skip
        self.arms = parse_arms(arms) if isinstance(arms, str) else tuple(arms)
        if len(self.arms) != 2:
            raise ExperimentError(f"an experiment needs two arms, got {len(self.arms)}")
        self.design = check_design(design)
        self.salt = ",".join(f"{a.name}={a.label}" for a in self.arms)
        self.store = EventStore(events, self.design, self.arms, max_bytes=max_bytes)
        # impression ids (which also seed each team draft): random, or reproducible from ``seed``
        self._ids = random.Random(seed) if seed is not None else random.SystemRandom()

    def __repr__(self) -> str:
        return f"Experiment({self.salt!r}, design={self.design!r}, events={str(self.store.path)!r})"

    def search(self, search: Callable[[Arm], list[Hit]], query: str, k: int,
               session: str | None = None) -> tuple[list[Hit], str | None, str]:  # fmt: skip
        """Answer ``query`` with ``search(arm)`` (that arm's top ``k``); record the impression.

        Return ``(hits, impression_id, session)``; a missing session gets a fresh id (split needs one). The
        impression id is None when the events file was locked and the impression dropped (``store.dropped``).
        """
        session = session or new_session()
        impression_id = uuid.UUID(int=self._ids.getrandbits(128), version=4).hex
        if self.design == "split":
            arm = assign(session, self.salt)
            hits = search(self.arms[arm])[:k]
            stored = self.store.add_impression(impression_id, query, [(h.id, arm) for h in hits], session, arm)
            return hits, impression_id if stored else None, session
        lists = [search(arm)[:k] for arm in self.arms]
        by_id = [{h.id: h for h in hits} for hits in lists]
        ids, teams = team_draft([h.id for h in lists[0]], [h.id for h in lists[1]], k, interleaving_rng(impression_id))
        stored = self.store.add_impression(impression_id, query, list(zip(ids, teams)), session)
        return [by_id[t][d] for d, t in zip(ids, teams)], impression_id if stored else None, session

    def click(self, impression_id: str, doc_id: str) -> bool:
        """Record a click on ``doc_id`` in ``impression_id``; True if new (see :meth:`EventStore.add_click`)."""
        return self.store.add_click(impression_id, doc_id)

    def summary(self) -> dict:
        """Return the experiment's state: design, totals, per-arm counts and the comparison's statistics."""
        counts = {**self.store.counts(), "dropped": self.store.dropped, "pruned": self.store.pruned}
        return summarize(self.design, self.arms, counts)

    def close(self) -> None:
        """Close the event store."""
        self.store.close()
