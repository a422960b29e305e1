"""Ranking quality: BM25, fusion, re-ranking, metrics with confidence intervals, evaluation, tuning, interleaving."""
