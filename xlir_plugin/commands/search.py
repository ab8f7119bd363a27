"""`xlir search`: one query, monolingual, cross-lingual or over the whole pool."""

from __future__ import annotations

import argparse
import json
import shutil

from ..connection_flags import add_es_flags, es_from_args


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("search", help="search an index with a query in any language")
    parser.add_argument("query", help="the query text")
    parser.add_argument("--model", default="default", help="exported model dir, or `default`")
    parser.add_argument("--index", required=True)
    parser.add_argument("--lang", help="the query's language (needed by --mode mono)")
    parser.add_argument(
        "--mode",
        choices=["multilingual", "cross", "mono"],
        default="multilingual",
        help="whole pool | passages in --target languages | passages in --lang",
    )
    parser.add_argument(
        "--target", dest="targets", help="comma-separated passage languages for --mode cross"
    )
    parser.add_argument("-k", type=int, default=10, help="hits to return")
    parser.add_argument(
        "--num-candidates", type=int, help="HNSW candidates (default max(100, 10k))"
    )
    parser.add_argument("--rescore", type=float, help="oversample factor for exact rescoring")
    parser.add_argument("--hybrid", action="store_true", help="fuse BM25 and kNN with RRF")
    parser.add_argument(
        "--in-engine",
        action="store_true",
        help="send the text only: the engine embeds it (the xlir plugin); --model names the "
        "installed model",
    )
    parser.add_argument("--json", action="store_true", help="print hits as JSON lines")
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    es = es_from_args(args)
    hits = run_in_engine(es, args) if args.in_engine else run_client_side(es, args)
    if args.json:
        for hit in hits:
            print(json.dumps(hit.as_dict(), ensure_ascii=False))
    else:
        print(format_hits(hits))
    return 0


def query_options(args: argparse.Namespace) -> dict:
    """What both paths take from the flags besides the index and the query."""
    names = ("mode", "lang", "targets", "k", "num_candidates", "rescore")
    return {name: getattr(args, name) for name in names}


def run_in_engine(es, args: argparse.Namespace) -> list:
    from ..engine import engine_search
    from .es_model import installed_model

    model = installed_model(es, args, hybrid="it fuses in Python, with the query vector here")
    return engine_search(es, args.index, model, args.query, **query_options(args))


def run_client_side(es, args: argparse.Namespace) -> list:
    from ..encoder import OnnxEncoder
    from ..models import resolve_served_model
    from ..search import search

    encoder = OnnxEncoder(resolve_served_model(args.model))
    options = query_options(args) | {"hybrid": args.hybrid}
    return search(es, args.index, encoder, args.query, **options)


def format_hits(hits: list, width: int | None = None) -> str:
    """A readable table: rank, score, language, id and the text cut to the terminal width."""
    width = width or shutil.get_terminal_size((120, 20)).columns
    if not hits:
        return "(no hits)"
    lines = [f"{'#':>2}  {'score':>6}  lang  {'id':<18} text"]
    for rank, hit in enumerate(hits, start=1):
        text = " ".join((hit.text or "").split())
        if hit.passages:  # a chunked index: the best passage, where it sits in the text
            best = hit.passages[0]
            text = f"[{best['start']}:{best['end']}] " + " ".join((best["text"] or "").split())
        line = f"{rank:>2}  {hit.score:6.3f}  {hit.lang or '?':<4}  {hit.id[:18]:<18} {text}"
        lines.append(line[:width])
    return "\n".join(lines)
