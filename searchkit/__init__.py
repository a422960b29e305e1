"""searchkit: semantic search you can measure. Embeddings, FAISS indexes, evaluation and serving.

The front door: every name a lesson needs is importable from here (``from searchkit import SearchEngine``) and
loads its module on first use, so ``import searchkit`` stays fast. Each name's home is in ``_EXPORTS``; the
folders say the flow: corpus → encoders → index → relevance → engine → serving, with experiments, scale,
measure and course beside them (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

_HOMES: dict[str, tuple[str, ...]] = {
    "searchkit.config": ("quick", "scifact_dir", "cache_dir"),
    "searchkit.errors": ("SearchkitError", "InputError", "DatasetError", "ModelNotFoundError", "SearchIndexError"),
    "searchkit.threads": ("set_compute_threads", "faiss_threads", "thread_count"),
    "searchkit.corpus.datasets": ("Corpus", "Dataset", "load_beir", "download_beir"),
    "searchkit.corpus.pydocs": ("load_pydocs",),
    "searchkit.corpus.loaders": ("load_dataset", "load_folder", "format_size", "parse_size"),
    "searchkit.corpus.mydocs": ("load_mydocs_judged",),
    "searchkit.corpus.chunking": ("chunk_corpus", "tokenizer_of"),
    "searchkit.corpus.synthetic": ("synthetic_embeddings", "isotropic_clusters", "pydocs_fit"),
    "searchkit.encoders.models": ("DEFAULT_MODEL", "load_model", "resolve_model"),
    "searchkit.encoders.embed": ("Embedder", "encode", "default_embedder", "throughput"),
    "searchkit.encoders.model_files": ("model_sha256", "tuned_info"),
    "searchkit.encoders.pairs": ("Pairs", "make_pairs", "judged_pairs", "document_pairs", "training_dataset",
                                 "mine_negatives"),
    "searchkit.encoders.training": ("finetune", "FinetuneResult", "record_held_out"),
    "searchkit.index.base": ("Index", "SearchResult"),
    "searchkit.index.vector": ("VectorIndex",),
    "searchkit.index.sizing": ("IndexSpec", "suggest_nlist"),
    "searchkit.index.memory": ("memory_estimate", "MemoryEstimate"),
    "searchkit.index.codes": ("build_index", "Reranked", "BinaryIndex", "Int8Index", "calibration_ranges",
                              "quantize_int8", "quantize_binary", "unpack_signs", "reconstruction_error"),
    "searchkit.index.budget": ("choose_index",),
    "searchkit.index.incremental": ("build_corpus_index",),
    "searchkit.relevance.lexical": ("BM25",),
    "searchkit.relevance.evaluate": ("evaluate_engine", "engine_with_index"),
    "searchkit.relevance.interleave": ("interleave", "team_draft"),
    "searchkit.engine": ("SearchEngine", "SearchSettings", "Hit", "EngineResult"),
    "searchkit.startup": ("load_engine",),
    "searchkit.serving.app": ("create_app",),
    "searchkit.serving.server": ("serve_in_background",),
    "searchkit.serving.cache": ("LRUCache",),
    "searchkit.serving.widgets": ("SearchBox",),
    "searchkit.experiments.arms": ("assign", "interleaving_rng", "parse_arms"),
    "searchkit.experiments.live": ("Experiment",),
    "searchkit.scale.shards": ("ShardedIndex", "build_shards", "merge_topk", "read_shard_manifest"),
    "searchkit.scale.ray_embed": ("embed_on_cluster",),
    "searchkit.measure.bench": ("Timer", "time_single", "ground_truth", "recall_at_k", "index_bytes",
                                "measure_operating_point", "sweep", "best_at_recall", "measure_codecs"),
    "searchkit.measure.load": ("load_test",),
    "searchkit.measure.report": ("format_table", "print_table", "side_by_side"),
    "searchkit.measure.plots": ("plot_similarity_heatmap", "plot_throughput", "plot_time_vs_n", "plot_ivf_cells",
                                "plot_hnsw_layers", "plot_pareto", "plot_pq_codes", "plot_hamming_vs_cosine",
                                "plot_recall_vs_memory", "plot_latency", "plot_power_curve", "plot_scatter_gather"),
}
_EXPORTS = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a front-door name from its home module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'searchkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
