"""The command line: ``python -m searchkit search|build|serve``."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import InputError, SearchkitError


def _engine(corpus: str, factory: str = "Flat"):
    from .datasets import load_dataset
    from .engine import SearchEngine

    return SearchEngine.build(load_dataset(corpus).corpus, factory=factory, progress=None)


def cmd_search(args: argparse.Namespace) -> int:
    """Answer each QUERY (one model load for all of them)."""
    _check_search_args(args)  # before the model loads: a typo should not cost seconds
    engine = _engine(args.corpus)
    for query, hits in zip(args.query, engine.search_many(args.query, args.k, args.mode)):
        if args.json:
            print(json.dumps({"query": query, "results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        else:
            print(f"# {query}")
            for rank, h in enumerate(hits, 1):
                print(f"{rank:3d}. {h.score:.3f}  {h.title}")
    return 0


def _check_search_args(args: argparse.Namespace) -> None:
    """Raise InputError for ``-k`` below 1 or an empty query, naming the value and the fix."""
    if args.k < 1:
        raise InputError(f"-k {args.k}: ask for at least one result per query, e.g. -k 10")
    for i, q in enumerate(args.query, 1):
        if not q.strip():
            raise InputError(f"query {i} is {q!r}: give some words to search for, e.g. \"delete a folder\"")


def cmd_build(args: argparse.Namespace) -> int:
    """Embed a corpus, index it and save the index to ``--out`` (atomically: old or new, never half)."""
    from .datasets import load_dataset
    from .engine import SearchEngine

    engine = SearchEngine.build(load_dataset(args.corpus).corpus, factory=args.factory, bm25=False, progress=None)
    engine.index.save(args.out)
    print(f"saved {len(engine.index)} vectors ({args.factory}, {engine.embedder.model_id}) to {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Load (or build) the index, then serve the search app with uvicorn until Ctrl-C."""
    import uvicorn

    from .app import create_app
    from .engine import load_engine
    from .server import set_compute_threads

    engine = load_engine(args.corpus, index_dir=args.index, factory=args.factory)  # fails fast on a bad index
    set_compute_threads(args.threads)  # after the build: embedding a corpus uses every core
    print(f"serving {len(engine.corpus)} documents on http://{args.host}:{args.port} (API docs at /docs)", flush=True)
    uvicorn.run(create_app(engine), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m searchkit``."""
    p = argparse.ArgumentParser(prog="python -m searchkit", description="Semantic search over a corpus.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="search a corpus from the command line")
    s.add_argument("query", nargs="+", help="one or more queries")
    s.add_argument("--corpus", default="pydocs", help="'pydocs' (built in) or 'beir:DIR' (default: pydocs)")
    s.add_argument("-k", type=int, default=10, help="results per query (default: 10)")
    s.add_argument("--mode", default="dense", help="dense, bm25 or hybrid (default: dense)")
    s.add_argument("--json", action="store_true", help="print one JSON object per query, one per line")
    s.set_defaults(func=cmd_search)
    corpus_help = "'pydocs' (built in) or 'beir:DIR' (default: pydocs)"
    b = sub.add_parser("build", help="build an index for a corpus and save it to a folder")
    b.add_argument("--corpus", default="pydocs", help=corpus_help)
    b.add_argument("--out", required=True, help="folder to save the index in (replaced atomically)")
    b.add_argument("--factory", default="Flat", help="faiss index factory string (default: Flat)")
    b.set_defaults(func=cmd_build)
    v = sub.add_parser("serve", help="serve the search API over HTTP (FastAPI + uvicorn)")
    v.add_argument("--corpus", default="pydocs", help=corpus_help)
    v.add_argument("--index", default=None, help="folder saved by 'build' (default: build the index in memory)")
    v.add_argument("--factory", default="Flat", help="faiss factory when building in memory (default: Flat)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    v.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    v.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    v.add_argument("--threads", type=int, default=1, help="torch/faiss threads per call (default: 1)")
    v.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SearchkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
