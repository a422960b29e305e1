"""Synthetic embeddings: seeded, deterministic, unit norm, fitted to real embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.corpus.synthetic import CHUNK, fit_gaussian, isotropic_clusters, synthetic_embeddings
from searchkit.errors import InputError


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 24)) * np.linspace(3, 0.1, 24) + 2.0  # anisotropic, off-centre
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return fit_gaussian(x, "test"), x


def test_fit_recovers_mean_and_sorted_spectrum(fit):
    g, x = fit
    assert np.allclose(g.mean, x.mean(axis=0), atol=1e-6)
    s = g.spectrum()
    assert (np.diff(s) <= 1e-9).all() and 0 < g.explained(3) < g.explained(10) <= 1.0
    with pytest.raises(InputError, match="finite"):
        fit_gaussian(np.full((3, 4), np.nan))


def test_synthetic_shape_norm_and_determinism(fit):
    g, x = fit
    a = synthetic_embeddings(1000, g, seed=7)
    assert a.shape == (1000, 24) and a.dtype == np.float32 and a.flags["C_CONTIGUOUS"]
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # exact: same seed and same shapes run the very same arithmetic, so the bits must match
    assert np.array_equal(a, synthetic_embeddings(1000, g, seed=7))
    assert not np.array_equal(a, synthetic_embeddings(1000, g, seed=8))
    assert np.allclose(a.mean(axis=0), x.mean(axis=0), atol=0.05)  # looks like the data it was fitted to
    assert synthetic_embeddings(0, g).shape == (0, 24)


def test_synthetic_prefix_is_stable_across_chunks(fit):
    g, _ = fit
    big = synthetic_embeddings(CHUNK + 10, g, seed=1, progress=False)
    # The first rows come from the same seeded draws, but the two calls multiply matrices of different sizes
    # ((CHUNK, d) vs (100, d)), and BLAS may block/vectorise those differently, so float32 results can differ
    # by an ulp or so. Unit vectors in float32 carry ~6e-8 relative error per op; 1e-6 absolute allows a few
    # ulps over a 24-term dot product yet still fails if the prefix were drawn from a different stream.
    np.testing.assert_allclose(big[:100], synthetic_embeddings(100, g, seed=1), rtol=0, atol=1e-6)
    assert np.allclose(np.linalg.norm(big[CHUNK:], axis=1), 1.0, atol=1e-5)


def test_isotropic_clusters():
    a = isotropic_clusters(500, dim=16, n_clusters=5, seed=2)
    assert a.shape == (500, 16) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, isotropic_clusters(500, dim=16, n_clusters=5, seed=2))
    with pytest.raises(InputError, match="n must be a non-negative integer"):
        isotropic_clusters(-1)


def test_pydocs_fit_is_minilm_shaped(embedder):
    from searchkit.corpus.synthetic import pydocs_fit

    g = pydocs_fit(embedder)
    assert g.dim == 384 and "pydocs" in g.source
    assert 0.3 < g.explained(32) < 0.9  # real embeddings: a few dozen directions hold much of the variance
    x = synthetic_embeddings(200, g, seed=0)
    assert float((x @ g.mean).mean()) > 0.05  # they share the common direction of real embeddings


def test_mixture_fit_keeps_topics(fit):
    g, x = fit
    mix = fit_gaussian(x, "test", clusters=8)
    assert mix.centres.shape[0] <= 8 and np.isclose(mix.weights.sum(), 1.0)
    assert mix.spectrum().sum() < g.spectrum().sum()  # within-topic spread is smaller than the total
    a = synthetic_embeddings(500, mix, seed=3)
    assert np.array_equal(a, synthetic_embeddings(500, mix, seed=3))
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InputError, match=r"clusters must be an integer from 1 to \d+, got .* \(at most n/2 for n = \d+ vectors\)"):
        fit_gaussian(x, clusters=0)
