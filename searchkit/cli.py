"""The command line: ``python -m searchkit search|build|serve``."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import SearchkitError


def _engine(corpus: str, factory: str = "Flat"):
    from .datasets import load_dataset
    from .engine import SearchEngine

    return SearchEngine.build(load_dataset(corpus).corpus, factory=factory, progress=None)


def cmd_search(args: argparse.Namespace) -> int:
    """Answer each QUERY (one model load for all of them)."""
    engine = _engine(args.corpus)
    for query, hits in zip(args.query, engine.search_many(args.query, args.k, args.mode)):
        if args.json:
            print(json.dumps({"query": query, "results": [h.to_dict() for h in hits]}, ensure_ascii=False))
        else:
            print(f"# {query}")
            for rank, h in enumerate(hits, 1):
                print(f"{rank:3d}. {h.score:.3f}  {h.title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m searchkit``."""
    p = argparse.ArgumentParser(prog="python -m searchkit", description="Semantic search over a corpus.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("search", help="search a corpus from the command line")
    s.add_argument("query", nargs="+", help="one or more queries")
    s.add_argument("--corpus", default="pydocs", help="'pydocs' (built in) or 'beir:DIR' (default: pydocs)")
    s.add_argument("-k", type=int, default=10, help="results per query (default: 10)")
    s.add_argument("--mode", default="dense", help="dense or bm25 (default: dense)")
    s.add_argument("--json", action="store_true", help="print one JSON object per query, one per line")
    s.set_defaults(func=cmd_search)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SearchkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
