"""Synthetic embeddings for benchmarks: seeded unit vectors shaped like real MiniLM embeddings.

Real sentence embeddings are not spread evenly over the sphere: they share a large common
direction (the mean), most of their variance lies in a few dozen directions, and they gather in
topics. ANN indexes exploit that structure, so random vectors give a misleading picture.
:func:`fit_gaussian` measures the mean and the covariance (eigenvectors and eigenvalue spectrum) of
real embeddings; with ``clusters=K`` it first splits them into K topics with k-means and keeps the
topic centres plus the pooled within-topic covariance (a Gaussian mixture), which matches how real
embeddings behave under ANN search far better than a single Gaussian. :func:`synthetic_embeddings`
draws from the fit and normalizes, in chunks, up to millions of vectors. :func:`isotropic_clusters`
is the worst case (noise around random centres) for comparison.
Everything made here is SYNTHETIC and must be labelled so wherever it is shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from searchkit.config import cache_dir
from searchkit.errors import InputError
from searchkit.storage import save_arrays_atomic
from searchkit.validation import check_positive_int

CHUNK = 65_536  # rows drawn per seeded chunk: output does not depend on how callers slice it


@dataclass(frozen=True)
class GaussianFit:
    """A Gaussian (mixture) fitted to unit embeddings.

    ``mean`` (d,) is the overall mean; ``basis`` (d, d) holds the covariance eigenvectors as columns and
    ``scales`` (d,) the standard deviations along them; ``centres`` (K, d) and ``weights`` (K,) are the
    topic centres and their shares when fitted with ``clusters=K > 1`` (None for a single Gaussian).
    """

    mean: np.ndarray
    basis: np.ndarray
    scales: np.ndarray
    source: str = "unknown"
    centres: np.ndarray | None = None
    weights: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Return the dimension d."""
        return int(self.mean.shape[0])

    def spectrum(self) -> np.ndarray:
        """Return the covariance eigenvalues (variances along the principal directions), largest first."""
        return self.scales**2

    def explained(self, n_components: int) -> float:
        """Return the share of the variance in the ``n_components`` largest directions (0..1)."""
        s = self.spectrum()
        return float(s[:n_components].sum() / s.sum())


def fit_gaussian(x: np.ndarray, source: str = "unknown", clusters: int = 1, seed: int = 0) -> GaussianFit:
    """Fit mean and covariance (eigen-decomposed, largest first) to embeddings ``x`` (n, d); ``clusters`` > 1: per topic."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not np.isfinite(x).all():
        raise InputError(f"fit_gaussian needs a finite (n, d) array with n >= 2, got shape {x.shape}")
    check_positive_int("clusters", clusters, maximum=len(x) // 2, hint=f"at most n/2 for n = {len(x)} vectors")
    mean = x.mean(axis=0)
    centres = weights = None
    resid = x - mean
    if clusters > 1:
        import faiss

        km = faiss.Kmeans(x.shape[1], int(clusters), niter=20, seed=seed, verbose=False)
        km.train(x.astype(np.float32))
        _, assign = km.index.search(x.astype(np.float32), 1)
        assign = assign[:, 0]
        counts = np.bincount(assign, minlength=clusters)
        used = np.flatnonzero(counts)
        centres = np.stack([x[assign == c].mean(axis=0) for c in used])
        weights = counts[used] / counts.sum()
        resid = x - centres[np.searchsorted(used, assign)]
    cov = np.cov(resid, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals = np.clip(vals[order], 0.0, None)
    return GaussianFit(
        mean.astype(np.float32),
        vecs[:, order].astype(np.float32),
        np.sqrt(vals).astype(np.float32),
        source,
        None if centres is None else centres.astype(np.float32),
        None if weights is None else weights.astype(np.float64),
    )


def pydocs_fit(embedder=None, clusters: int = 64) -> GaussianFit:
    """Return the Gaussian mixture (``clusters`` topics; 1 = one Gaussian) fitted to the Python-docs MiniLM embeddings.

    Cached on disk. 64 topics reproduce the recall/efSearch curve of the real embeddings; a single Gaussian
    (same mean and overall covariance spectrum, no topics) is markedly harder for ANN than real data.
    """
    from searchkit.corpus.pydocs import load_pydocs
    from searchkit.encoders.embed import default_embedder

    embedder = embedder or default_embedder()
    corpus = load_pydocs().corpus
    texts = corpus.embedding_texts()
    key = hashlib.sha256((embedder.cache_id + "\n" + "\n".join(texts)).encode()).hexdigest()[:16]
    path = cache_dir() / "synthetic" / f"pydocs-fit-{key}-k{clusters}.npz"
    source = f"pydocs ({len(texts)} MiniLM embeddings, {clusters} topic(s))"
    if path.is_file():
        z = np.load(path)
        if clusters > 1:
            return GaussianFit(z["mean"], z["basis"], z["scales"], source, z["centres"], z["weights"])
        return GaussianFit(z["mean"], z["basis"], z["scales"], source)
    fit = fit_gaussian(embedder.encode_cached(texts), source, clusters=clusters)
    extra = {} if fit.centres is None else {"centres": fit.centres, "weights": fit.weights}
    save_arrays_atomic(path, mean=fit.mean, basis=fit.basis, scales=fit.scales, **extra)
    return fit


def _check_n(n: int) -> int:
    return check_positive_int("n", n, minimum=0, hint="a number of vectors")


def _normalize(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_embeddings(
    n: int, fit: GaussianFit | None = None, seed: int = 0, progress: bool | None = None
) -> np.ndarray:
    """Return ``n`` SYNTHETIC unit vectors (float32, (n, d)) drawn from ``fit`` (default: :func:`pydocs_fit`).

    Deterministic for a given ``seed``; drawn in chunks of 65,536 rows, so 1M vectors need ~1.5 GB only for the
    result. Use a different seed for queries than for the database.
    """
    n = _check_n(n)
    fit = fit or pydocs_fit()
    from tqdm.auto import tqdm

    out = np.empty((n, fit.dim), dtype=np.float32)
    transform = (fit.basis * fit.scales).T  # z @ transform has the fitted covariance
    disable = n < 4 * CHUNK if progress is None else not progress
    for c, start in enumerate(tqdm(range(0, n, CHUNK), desc="synthetic vectors", disable=disable)):
        m = min(CHUNK, n - start)
        rng = np.random.default_rng([seed, c])
        z = rng.standard_normal((m, fit.dim), dtype=np.float32) @ transform
        if fit.centres is None:
            z += fit.mean
        else:
            z += fit.centres[rng.choice(len(fit.centres), m, p=fit.weights)]
        out[start : start + m] = _normalize(z)
    return out


def isotropic_clusters(
    n: int, dim: int = 384, n_clusters: int = 1000, spread: float = 0.5, seed: int = 0, centre_seed: int = 0
) -> np.ndarray:
    """Return ``n`` SYNTHETIC unit vectors: isotropic noise (``spread``) around random centres; ANN's worst case.

    The centres depend on ``centre_seed`` only, so queries drawn with another ``seed`` share them.
    """
    n = _check_n(n)
    if n_clusters < 1 or spread < 0:
        raise InputError(f"need n_clusters >= 1 and spread >= 0, got {n_clusters!r} and {spread!r}")
    rng = np.random.default_rng([centre_seed, 1 << 20])
    centres = _normalize(rng.standard_normal((n_clusters, dim)).astype(np.float32))
    out = np.empty((n, dim), dtype=np.float32)
    for c, start in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - start)
        r = np.random.default_rng([seed, c])
        z = centres[r.integers(0, n_clusters, m)] + spread / np.sqrt(dim) * r.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = _normalize(z)
    return out
