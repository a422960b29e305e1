"""searchkit: semantic search you can measure. Embeddings, FAISS indexes, evaluation and serving."""

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from searchkit.corpus.datasets import Corpus, Dataset, download_beir, load_beir, load_pydocs  # noqa: E402
from searchkit.corpus.loaders import load_dataset  # noqa: E402
from searchkit.encoders.embed import Embedder, encode  # noqa: E402
from searchkit.encoders.models import DEFAULT_MODEL, load_model, resolve_model  # noqa: E402
from searchkit.engine import Hit, SearchEngine  # noqa: E402
from searchkit.errors import DatasetError, InputError, ModelNotFoundError, SearchIndexError, SearchkitError  # noqa: E402
from searchkit.index.vector import VectorIndex  # noqa: E402
from searchkit.relevance.lexical import BM25  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BM25",
    "Corpus",
    "DEFAULT_MODEL",
    "Dataset",
    "DatasetError",
    "Embedder",
    "Hit",
    "InputError",
    "ModelNotFoundError",
    "SearchEngine",
    "SearchIndexError",
    "SearchkitError",
    "VectorIndex",
    "download_beir",
    "encode",
    "load_beir",
    "load_dataset",
    "load_model",
    "load_pydocs",
    "resolve_model",
]
