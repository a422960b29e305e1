"""Start-up wiring: a SearchEngine from a corpus spec, a saved index folder (or shards) and a fusion file."""

from __future__ import annotations

from searchkit.corpus.chunking import passages_for
from searchkit.corpus.loaders import load_dataset
from searchkit.encoders.embed import default_embedder
from searchkit.encoders.models import DEFAULT_BACKEND, Backend
from searchkit.engine import SearchEngine
from searchkit.errors import InputError, SearchIndexError
from searchkit.index.manifest import read_manifest
from searchkit.index.vector import VectorIndex
from searchkit.relevance.lexical import BM25
from searchkit.relevance.rerank import Reranker, check_cross_encoder_dir
from searchkit.relevance.tuning import apply_fusion, fusion_for
from searchkit.validation import check_positive_int


def load_engine(
    corpus: str = "pydocs", index_dir: str | None = None, factory: str = "Flat", bm25: bool = True,
    progress: bool | None = None, backend: Backend = DEFAULT_BACKEND, text_column: str = "text",
    max_file_size: int | None = None, follow_links: bool = False, model: str | None = None,
    reranker: str | None = None, rerank_depth: int | None = None,
) -> SearchEngine:  # fmt: skip
    """Return an engine for ``corpus``: with ``index_dir``, load that saved index, checked; else build one.

    Queries are embedded with ``backend``; a saved index built with another backend of the same model is
    served as it is (``/health`` says so under ``backend``). Checks come first and fail with one line naming
    the fix: a missing or damaged index, one built with another model or dimension, or one whose ids are not
    documents (or passages) of ``corpus``. ``text_column``, ``max_file_size`` and ``follow_links`` say how to
    read your own files (searchkit.corpus.loaders); ``model`` is the embedding model (a folder, e.g. a fine-tuned
    one; default all-MiniLM-L6-v2), and a saved index built by another model is refused. A folder of shards (``build
    --shards N``) loads onto the connected Ray cluster (searchkit.scale.cluster). Hybrid mode uses the corpus's fusion
    (tuned for pydocs: searchkit.relevance.tuning).
    ``reranker`` (a cross-encoder folder) becomes the engine's second stage; ``rerank_depth`` its default depth.
    """
    from searchkit.scale.shards import ShardedIndex, is_sharded, read_shard_manifest

    sharded = index_dir is not None and is_sharded(index_dir)  # shards: on the Ray cluster this process is connected to
    if index_dir is not None:  # a missing or unreadable index fails before the model loads
        read_shard_manifest(index_dir) if sharded else read_manifest(index_dir)
    check_rerank_options(reranker, rerank_depth)  # so does a missing or damaged cross-encoder folder
    docs = load_dataset(corpus, text_column, max_file_size, follow_links).corpus
    embedder = default_embedder(backend, model)
    if index_dir is None:
        engine = SearchEngine.build(docs, embedder, factory=factory, bm25=bm25, progress=progress)
        return _finish(engine, corpus, reranker, rerank_depth)
    if sharded:
        index = ShardedIndex.load(index_dir, model_id=embedder.model_id, dim=embedder.dim)
    else:
        index = VectorIndex.load(index_dir, embedder.model_id, embedder.dim, model_sha256=embedder.model_sha256)
    passages = passages_for(docs, embedder)
    known = set(passages.ids) if passages else docs
    unknown = [d for d in index.doc_ids() if d not in known]
    if unknown:
        raise SearchIndexError(
            f"index in {index_dir} holds {len(unknown)} ids that are not documents of {corpus!r} "
            f"(e.g. {unknown[0]!r}): build it from this corpus with "
            f"python -m searchkit build --corpus {corpus} --out {index_dir}"
        )
    engine = SearchEngine(docs, embedder, index, BM25(docs.ids, docs.full_texts()) if bm25 else None, passages)
    return _finish(engine, corpus, reranker, rerank_depth)


def check_rerank_options(reranker: str | None, rerank_depth: int | None) -> None:
    """Raise a SearchkitError for a bad ``--rerank-depth`` or a missing or damaged ``--reranker`` folder."""
    check_positive_int("--rerank-depth", rerank_depth, none_ok=True, hint="hits re-ordered per query, e.g. 50")
    if rerank_depth is not None and reranker is None:
        raise InputError(f"--rerank-depth {rerank_depth} needs --reranker DIR: the cross-encoder folder to re-rank with")
    if reranker is not None:
        check_cross_encoder_dir(reranker)


def _finish(engine: SearchEngine, corpus: str, reranker: str | None, rerank_depth: int | None) -> SearchEngine:
    """Give ``engine`` the corpus's tuned fusion and the cross-encoder (re-ranking ``rerank_depth`` hits by default)."""
    apply_fusion(engine, fusion_for(corpus))
    if reranker is not None:
        engine.reranker = Reranker(reranker)
        engine.defaults = engine.defaults.with_(rerank_depth=rerank_depth)
    return engine
