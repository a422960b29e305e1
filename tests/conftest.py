"""Shared fixtures: the real model and the built-in corpus are loaded once per test session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SEARCHKIT_QUICK", "1")  # benchmarks run small in tests; the notebooks never read it


@pytest.fixture(scope="session")
def embedder():
    """The default all-MiniLM-L6-v2 embedder (packaged copy)."""
    from searchkit.encoders.embed import default_embedder

    return default_embedder()


@pytest.fixture(scope="session")
def pydocs():
    """The built-in Python-docs dataset."""
    from searchkit.corpus.pydocs import load_pydocs

    return load_pydocs()


@pytest.fixture(scope="session")
def pydocs_engine(pydocs, embedder):
    """An exact (Flat) engine over the Python docs, with BM25."""
    from searchkit.engine import SearchEngine

    return SearchEngine.build(pydocs.corpus, embedder, progress=False)


SMALL_DOCS = {  # ten Python-docs entries: the small corpus of the app and cache tests
    "os.remove": "Remove (delete) the file path.",
    "os.rmdir": "Remove (delete) the directory path. The directory must be empty.",
    "shutil.rmtree": "Delete an entire directory tree; path must point to a directory.",
    "shutil.copyfile": "Copy the contents of the file named src to a file named dst.",
    "json.loads": "Deserialize a str instance containing a JSON document to a Python object.",
    "json.dumps": "Serialize obj to a JSON formatted str.",
    "csv.reader": "Return a reader object which will iterate over lines in the given csvfile.",
    "csv.writer": "Return a writer object responsible for converting the user's data into delimited strings.",
    "time.sleep": "Delay execution for a given number of seconds.",
    "random.shuffle": "Shuffle list x in place, and return None.",
}


@pytest.fixture(scope="session")
def small_docs() -> dict[str, str]:
    """Ten documents with Python-docs ids: ``{id: text}``."""
    return dict(SMALL_DOCS)


@pytest.fixture(scope="session")
def small_engine(small_docs, embedder):
    """A ten-document engine (dense + BM25) with ids like the Python docs."""
    from searchkit.corpus.datasets import Corpus
    from searchkit.engine import SearchEngine

    ids = list(small_docs)
    return SearchEngine.build(Corpus(ids, ids, list(small_docs.values())), embedder, progress=False)


@pytest.fixture
def unit_vectors():
    """Return a function making seeded unit vectors: ``unit_vectors(n, d, seed=0)``."""

    def make(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
        x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return make


@pytest.fixture(scope="module")
def one_compute_thread():
    """Run torch and faiss with one thread per call, as ``serve`` does (restored afterwards).

    With two threads each on a busy 2-core machine, one query embedding can take most of a second.
    """
    import faiss
    import torch

    from searchkit import threads
    from searchkit.threads import set_compute_threads

    before = torch.get_num_threads(), faiss.omp_get_max_threads(), threads._threads
    set_compute_threads(1)
    yield
    torch.set_num_threads(before[0])
    faiss.omp_set_num_threads(before[1])
    threads._threads = before[2]


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (127.0.0.1, 2 CPUs) for the whole session, stopped by its process ids, never `ray stop`."""
    from searchkit.scale import cluster

    c = cluster.start_local(num_cpus=2)
    started = list(c.pids)
    yield c
    tree = cluster.process_tree(started)
    c.stop()
    left = cluster.process_tree(tree)
    assert not left, f"Ray processes left running after stop(): {left}"


def tiny_beir(folder: Path, prefix: str = "d", n: int = 60) -> Path:
    """Write a tiny BEIR-layout corpus to ``folder``: ``n`` short documents ``{prefix}{i}``, one query, one judgement.

    Shared by the tests that serve or rebuild a corpus from disk (``from conftest import tiny_beir``).
    """
    (folder / "qrels").mkdir(parents=True)
    words = ["files", "folders", "time", "dates", "numbers", "text", "network", "threads", "json", "random"]
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(n):
            text = f"Document {i} about {words[i % 10]} and {words[(i * 7) % 10]}."
            f.write(json.dumps({"_id": f"{prefix}{i}", "title": "", "text": text}) + "\n")
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "files"}\n')
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\t{prefix}0\t1\n")
    return folder
