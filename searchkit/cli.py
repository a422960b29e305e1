"""The command line: ``python -m searchkit search|build|serve|tune-fusion|finetune``."""

from __future__ import annotations

import argparse
import json
import sys

from searchkit.encoders.training_cli import add_finetune_parser
from searchkit.errors import InputError, SearchkitError

DEFAULT_RERANK_DEPTH = 50  # hits the cross-encoder re-orders when --reranker is given without --rerank-depth


def _max_file_size(args: argparse.Namespace) -> int | None:
    from searchkit.corpus.loaders import parse_size

    return parse_size(args.max_file_size, "--max-file-size") if args.max_file_size else None


def _corpus(args: argparse.Namespace):
    """Load ``--corpus`` with the file options ``--text-column`` and ``--max-file-size``."""
    from searchkit.corpus.loaders import load_dataset

    return load_dataset(args.corpus, args.text_column, _max_file_size(args), args.follow_links).corpus


def _engine(args: argparse.Namespace):
    """Build an engine for ``--corpus`` with the ``--backend`` encoder and the corpus's hybrid fusion."""
    from searchkit.encoders.embed import Embedder
    from searchkit.engine import SearchEngine
    from searchkit.relevance.tuning import apply_fusion, fusion_for

    engine = SearchEngine.build(_corpus(args), Embedder(args.model, backend=args.backend), progress=None)
    apply_fusion(engine, fusion_for(args.corpus))
    return engine


def cmd_search(args: argparse.Namespace) -> int:
    """Answer each QUERY (one model load for all of them)."""
    engine = _engine(args)
    if args.reranker is not None:
        from searchkit.relevance.rerank import Reranker

        engine.reranker = Reranker(args.reranker)
        engine.defaults = engine.defaults.with_(rerank_depth=args.rerank_depth)
    for query, hits in zip(args.query, engine.search_many(args.query, args.k, args.mode)):
        if args.json:
            print(json.dumps({"query": query, "results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        else:
            print(f"# {query}")
            for rank, h in enumerate(hits, 1):
                print(f"{rank:3d}. {h.score:.3f}  {h.title}")
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Raise InputError for the first bad flag or query, naming its value and the fix, before anything loads."""
    from searchkit.validation import clean_query

    def bad(ok: bool, flag: str, fix: str) -> None:
        if not ok:
            raise InputError(f"{flag} {getattr(args, flag.lstrip('-').replace('-', '_'), '')}: {fix}")

    def given(name: str):
        return getattr(args, name, None)

    if given("k") is not None:
        bad(args.k >= 1, "-k", "ask for at least one result per query, e.g. -k 10")
    for i, q in enumerate(given("query") or (), 1):
        clean_query(q, f"query {i}")  # the rule every query follows (searchkit.validation), HTTP's too
    if given("mode") is not None:
        from searchkit.engine import MODES

        bad(args.mode in MODES, "--mode", f"choose one of {', '.join(MODES)}")
    if given("min_recall") is not None:
        bad(0 < args.min_recall <= 1, "--min-recall", "give a recall@10 target above 0 and at most 1, e.g. 0.95")
    if given("max_latency_ms") is not None:
        bad(0 < args.max_latency_ms < float("inf"), "--max-latency-ms", "give a p99 target in milliseconds, e.g. 5")
    for flag, minimum in (("shards", 1), ("threads", 1), ("folds", 2)):
        if given(flag) is not None:
            bad(args.__dict__[flag] >= minimum, f"--{flag.replace('_', '-')}", f"give a whole number of at least {minimum}")
    if given("port") is not None:
        bad(0 <= args.port <= 65535, "--port", "give a TCP port from 0 to 65535, e.g. 8000")
    from searchkit.corpus.loaders import parse_size

    for flag in ("max_memory", "max_file_size"):
        if given(flag) is not None:
            parse_size(args.__dict__[flag], f"--{flag.replace('_', '-')}")
    if hasattr(args, "reranker"):
        _check_rerank_args(args)


def _check_rerank_args(args: argparse.Namespace) -> None:
    """Check ``--reranker`` and ``--rerank-depth`` (default 50 with a re-ranker) before any model loads."""
    from searchkit.startup import check_rerank_options

    if args.reranker is not None and args.rerank_depth is None:
        args.rerank_depth = DEFAULT_RERANK_DEPTH
    check_rerank_options(args.reranker, args.rerank_depth)


def _budget(args: argparse.Namespace):
    """Return ``choose(xb, ids) -> IndexSpec`` for the budget flags of ``build``, or None when none is given."""
    targets = {"--max-memory": args.max_memory, "--min-recall": args.min_recall, "--max-latency-ms": args.max_latency_ms}
    given = [flag for flag, v in targets.items() if v is not None]
    if not given:
        return None
    if args.factory is not None:
        raise InputError(
            f"--factory {args.factory} and {' '.join(given)} both given: choose one, a factory string or a budget "
            "for the chooser to meet"
        )
    if args.max_memory is None:
        raise InputError(f"{' '.join(given)} needs a memory budget too: add --max-memory, e.g. --max-memory 2GB")
    from searchkit.corpus.loaders import parse_size
    from searchkit.index.budget import choose_index

    memory = parse_size(args.max_memory, "--max-memory")
    recall = 0.95 if args.min_recall is None else args.min_recall

    def choose(xb, ids):
        """Print the chooser's table for vectors ``xb``; return the chosen IndexSpec (or raise with its advice)."""
        choice = choose_index(xb, memory, recall, args.max_latency_ms)
        print(choice, flush=True)
        return choice.spec()

    return choose


def cmd_build(args: argparse.Namespace) -> int:
    """Embed a corpus, index it and save it to ``--out`` (atomically); again later, re-embed only what changed."""
    if args.shards is not None:
        return _build_shards(args)
    from searchkit.encoders.embed import Embedder
    from searchkit.index.incremental import build_corpus_index

    choose = _budget(args)  # bad flags fail before the corpus loads
    corpus = _corpus(args)
    embedder = Embedder(args.model, backend=args.backend)
    report = build_corpus_index(corpus, args.out, embedder, args.factory, choose)
    print(f"saved {report.passages} vectors ({report.factory}, {embedder.model_id}, {args.backend}) to {args.out}: {report}")
    return 0


def _build_shards(args: argparse.Namespace) -> int:
    """Embed the corpus and write ``--shards`` shard folders plus their manifest to ``--out``."""
    from searchkit.encoders.embed import Embedder
    from searchkit.scale.shards import build_shards

    corpus, embedder = _corpus(args), Embedder(args.model, backend=args.backend)
    xb = embedder.encode_cached(corpus.embedding_texts(), progress=None)
    factory = args.factory or "Flat"
    build_shards(corpus.ids, xb, args.shards, args.out, factory, embedder.model_id, backend=embedder.backend)
    print(f"saved {len(xb)} vectors in {args.shards} shards ({factory}, {embedder.model_id}, {args.backend}) "
          f"to {args.out}")  # fmt: skip
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Load (or build) the index, then serve the search app with uvicorn until Ctrl-C."""
    import uvicorn

    from searchkit.scale.shards import is_sharded
    from searchkit.serving.app import create_app
    from searchkit.serving.server import CONNECTION_LIMITS
    from searchkit.startup import load_engine
    from searchkit.threads import set_compute_threads
    from searchkit.validation import check_positive_int

    experiment = _experiment(args)  # a bad arm spec or events file fails before the model loads
    _check_rerank_args(args)
    check_positive_int("--result-cache", args.result_cache, minimum=0, hint="answers kept; 0 turns the result cache off")
    ray_cluster = None
    if args.index is not None and is_sharded(args.index):  # shards live on Ray: a local cluster, or --ray ADDRESS
        from searchkit.scale.cluster import start_or_connect

        ray_cluster = start_or_connect(args.ray)
    elif args.ray is not None:
        raise InputError(f"--ray {args.ray}: only an index built with --shards runs on Ray; leave out --ray")
    try:
        engine = load_engine(args.corpus, index_dir=args.index, factory=args.factory, backend=args.backend,
                             text_column=args.text_column, max_file_size=_max_file_size(args),
                             follow_links=args.follow_links, model=args.model,
                             reranker=args.reranker, rerank_depth=args.rerank_depth)  # fails fast; fmt: skip
        set_compute_threads(args.threads, engine.embedder)  # after the build: embedding a corpus uses every core
        built = engine.index.backend
        note = f", index vectors from {built}" if built and built != args.backend else ""
        where = f" in {engine.index.n_shards} shards on Ray at {ray_cluster.address}" if ray_cluster else ""
        print(f"serving {len(engine.corpus)} documents{where} on http://{args.host}:{args.port} (API docs at /docs; "
              f"queries embedded with {args.backend}{note})", flush=True)  # fmt: skip
        if experiment is not None:
            print(f"experiment: {experiment.design} {experiment.salt}, events in {args.events}", flush=True)
        app = create_app(engine, experiment=experiment, cors_origins=args.cors_origin or (),
                         result_cache_size=args.result_cache)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **CONNECTION_LIMITS)
    finally:
        if ray_cluster is not None:
            ray_cluster.stop()  # ends the local cluster this command started; only disconnects from --ray ADDRESS
    return 0


def _experiment(args: argparse.Namespace):
    """Return the Experiment that ``--experiment`` asks for (None without it)."""
    from searchkit.experiments.arms import check_design, parse_arms
    from searchkit.experiments.live import Experiment

    max_mb = args.events_max_mb
    if args.experiment is None:
        if args.events or args.experiment_design or max_mb is not None:
            raise SearchkitError("--events and --experiment-design need --experiment (so does --events-max-mb), "
                                 "e.g. control=bm25,treatment=hybrid")  # fmt: skip
        return None
    arms = parse_arms(args.experiment)
    if not args.events:
        raise SearchkitError("--experiment needs --events PATH: the SQLite file that stores impressions and clicks")
    if max_mb is not None and not (max_mb >= 1):  # also refuses nan
        raise SearchkitError(f"--events-max-mb {max_mb:g}: give 1 or more megabytes (the oldest impressions are pruned)")
    max_bytes = None if max_mb is None else int(max_mb * 2**20)
    return Experiment(arms, check_design(args.experiment_design or "interleave"), args.events, max_bytes=max_bytes)


def cmd_tune_fusion(args: argparse.Namespace) -> int:
    """Choose hybrid fusion from the corpus's judged queries by cross-validation; print folds and CIs."""
    from searchkit.corpus.loaders import load_dataset
    from searchkit.encoders.embed import Embedder
    from searchkit.engine import SearchEngine
    from searchkit.relevance.tuning import save_fusion, tune_fusion

    ds = load_dataset(args.corpus)
    engine = SearchEngine.build(ds.corpus, Embedder(args.model, backend=args.backend), progress=None)
    res = tune_fusion(engine, ds, folds=args.folds, seed=args.seed)
    print(f"{ds.name}: {len(res.qids)} judged queries, {args.folds}-fold cross-validation, encoder {args.backend}")
    print(res.fold_table(), res.table(), sep="\n\n")
    print(f"\nhybrid-tuned (held-out folds) vs dense, nDCG@10 difference: {res.compare('held-out', 'dense')}")
    print(f"hybrid-tuned (fit on all) vs dense, nDCG@10 difference: {res.compare('hybrid-tuned (fit on all)', 'dense')}")
    print(f"chosen on all queries: {res.best}")
    if args.out:
        command = f"python -m searchkit tune-fusion --corpus {args.corpus} --backend {args.backend} --folds {args.folds} --seed {args.seed} --out {args.out}"
        print(f"wrote {save_fusion(res, args.out, backend=args.backend, command=command)}")
    return 0


def _backend(p: argparse.ArgumentParser, rerank: bool = False) -> None:
    """Add ``--backend`` (and, with ``rerank``, ``--reranker`` and ``--rerank-depth``)."""
    if rerank:
        _rerank_options(p)
    from searchkit.encoders.models import BACKENDS, DEFAULT_BACKEND

    p.add_argument("--model", default=None, metavar="DIR",
                   help="embedding model: a folder (e.g. from finetune) or a name (default: all-MiniLM-L6-v2)")  # fmt: skip
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS,
                   help=f"query/document encoder: {', '.join(BACKENDS)} (default: {DEFAULT_BACKEND}, fastest at equal nDCG@10)")  # fmt: skip


def _rerank_options(*parsers: argparse.ArgumentParser) -> None:
    """Add ``--reranker DIR`` and ``--rerank-depth N`` to each of ``parsers``."""
    for p in parsers:
        p.add_argument("--reranker", default=None, metavar="DIR",
                       help="re-order the first hits with this cross-encoder folder (finetune --cross-encoder)")
        p.add_argument("--rerank-depth", type=int, default=None, metavar="N",
                       help=f"hits the cross-encoder re-orders per query (default with --reranker: {DEFAULT_RERANK_DEPTH})")


def _file_options(p: argparse.ArgumentParser) -> None:
    """Add the options that say how to read your own files."""
    p.add_argument("--text-column", default="text", help="the CSV column holding the text (default: text)")
    p.add_argument("--max-file-size", default=None, help="skip files larger than this, e.g. 50MB (default: 10MB)")
    p.add_argument("--follow-links", action="store_true",
                   help="in a folder, also read links to files outside it (never pipes, devices or /proc files)")


_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's


def _experiment_options(v: argparse.ArgumentParser) -> None:
    """Add the options of an online experiment to ``serve``."""
    v.add_argument("--experiment", default=None, metavar="A=MODE[:FUSION],B=MODE[:FUSION]",
                   help="run an online experiment between two arms, e.g. control=bm25,treatment=hybrid:rrf")
    v.add_argument("--experiment-design", default=None, choices=("interleave", "split"),
                   help="interleave: every result list mixes both arms; split: each session sees one arm "
                   "(default: interleave)")
    v.add_argument("--events", default=None, metavar="PATH", help="SQLite file for impressions and clicks")
    v.add_argument("--events-max-mb", type=float, default=None, metavar="MB",
                   help="keep the events file under MB megabytes by pruning the oldest impressions (default: no bound)")


CORPUS_HELP = "'pydocs' (built in), 'beir:DIR', a folder of text files, a .jsonl or a .csv (default: pydocs)"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m searchkit``."""
    from searchkit.serving.cache import DEFAULT_RESULTS

    p = argparse.ArgumentParser(prog="python -m searchkit", description="Semantic search over a corpus.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="search a corpus from the command line")
    s.add_argument("query", nargs="+", help="one or more queries")
    s.add_argument("--corpus", default="pydocs", help=CORPUS_HELP)
    _file_options(s)
    s.add_argument("-k", type=int, default=10, help="results per query (default: 10)")
    s.add_argument("--mode", default="dense", help="dense, bm25 or hybrid (default: dense)")
    s.add_argument("--json", action="store_true", help="print one JSON object per query, one per line")
    _backend(s, rerank=True)
    s.set_defaults(func=cmd_search)
    b = sub.add_parser("build", help="build an index for a corpus and save it to a folder")
    b.add_argument("--corpus", default="pydocs", help=CORPUS_HELP)
    b.add_argument("--out", required=True, help="folder to save the index in (replaced atomically)")
    b.add_argument("--factory", default=None, help="faiss index factory string (default: Flat, or chosen by a budget)")
    b.add_argument("--max-memory", default=None, help="memory budget for the index, e.g. 512MB or 2GB: choose the index")
    b.add_argument("--min-recall", type=float, default=None, help="recall@10 target for the chooser (default: 0.95)")
    b.add_argument("--max-latency-ms", type=float, default=None, help="p99 single-query latency target (optional)")
    _file_options(b)
    b.add_argument("--shards", type=int, default=None, metavar="N",
                   help="split the index into N shards by id hash, one folder each, for serving on Ray")  # fmt: skip
    _backend(b)
    b.set_defaults(func=cmd_build)
    v = sub.add_parser("serve", help="serve the search API over HTTP (FastAPI + uvicorn)")
    v.add_argument("--corpus", default="pydocs", help=CORPUS_HELP)
    v.add_argument("--index", default=None, help="folder saved by 'build' (default: build the index in memory)")
    v.add_argument("--factory", default="Flat", help="faiss factory when building in memory (default: Flat)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    v.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    v.add_argument("--log-level", default="info", choices=_LOG_LEVELS, help="uvicorn log level (default: info)")
    v.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. http://localhost:3000) call the API; repeat for more (default: none)")
    v.add_argument("--threads", type=int, default=1, help="torch/faiss threads per call (default: 1)")
    v.add_argument("--result-cache", type=int, default=DEFAULT_RESULTS, metavar="N",
                   help=f"answers of repeated queries kept whole (default: {DEFAULT_RESULTS}; 0: off)")
    _file_options(v)
    v.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="sharded index: use the Ray cluster at HOST:PORT ('auto': the one on this machine) "
                        "instead of starting a local one")  # fmt: skip
    _backend(v, rerank=True)
    _experiment_options(v)
    v.set_defaults(func=cmd_serve)
    t = sub.add_parser("tune-fusion", help="choose hybrid fusion and weights from judged queries (cross-validated)")
    t.add_argument("--corpus", default="pydocs", help=CORPUS_HELP + "; needs judged queries")
    t.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    t.add_argument("--seed", type=int, default=0, help="seed of the fold split (default: 0)")
    t.add_argument("--out", default=None, help="write the chosen config here (pydocs ships data/pydocs/fusion.json)")
    _backend(t)
    t.set_defaults(func=cmd_tune_fusion)
    add_finetune_parser(sub)  # its flags and command live in searchkit.encoders.training_cli
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        check_flags(args)  # every flag before the model loads: a typo should not cost seconds
        return args.func(args)
    except SearchkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
