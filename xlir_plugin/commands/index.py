"""`xlir index`: embed a JSONL file with an exported model and bulk-index it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..chunking import DEFAULT_MAX_TOKENS
from ..connection_flags import add_es_flags, es_from_args
from ..errors import InputError
from ..ingest import BATCH_SIZE
from ..schema import default_index_spec


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "index",
        help="embed and index documents (JSONL: id, text, lang, optional fields)",
        description="Re-runs are safe: document ids are the given `id` or a hash of lang+text.",
    )
    parser.add_argument("--model", default="default", help="exported model dir, or `default`")
    parser.add_argument(
        "--index", required=True, help="index name (created for the model if missing)"
    )
    parser.add_argument("--input", required=True, type=Path, help="JSONL file (.gz ok)")
    parser.add_argument("--pipeline", help="ingest pipeline to pass documents through")
    parser.add_argument(
        "--index-options",
        help="dense_vector index_options: hnsw|int8_hnsw|bbq_hnsw|flat..., e.g. 'hnsw,m=32,"
        f"ef_construction=200' (default: {default_index_spec()})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"texts per encoder call, sorted by length inside it (default {BATCH_SIZE})",
    )
    parser.add_argument(
        "--failures", type=Path, help="failures file (default: <input>.failures.jsonl)"
    )
    parser.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    parser.add_argument(
        "--in-engine",
        action="store_true",
        help="embed inside the engine (the xlir plugin): --model names the installed model "
        "(a dir or `default` is installed first); no encoding here",
    )
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        nargs="?",
        const=DEFAULT_MAX_TOKENS,
        metavar="N",
        help="long documents: cut each text into passages of at most N model tokens (N "
        f"omitted: {DEFAULT_MAX_TOKENS}, measured in results/long-documents.md), one vector "
        "each (a nested `passages` field; a hit is the document with its best passages). "
        "Without it: one vector per document, truncated at the model's max length",
    )
    parser.add_argument(
        "--chunk-overlap",
        type=int,
        default=0,
        metavar="M",
        help="with --chunk-tokens: tokens shared by consecutive passages (default 0; < N/2)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..index import parse_index_options

    chunking = None  # checked before anything else: a bad flag needs no cluster
    if args.chunk_tokens is not None:
        from ..chunking import ChunkSettings

        chunking = ChunkSettings(args.chunk_tokens, args.chunk_overlap)
    elif args.chunk_overlap:
        raise InputError("--chunk-overlap needs --chunk-tokens")
    es = es_from_args(args)
    failures = args.failures or args.input.with_name(args.input.name + ".failures.jsonl")
    options = parse_index_options(args.index_options)
    if args.in_engine:
        report = run_in_engine(es, args, failures, options, chunking)
    else:
        from ..encoder import OnnxEncoder
        from ..ingest import ingest
        from ..models import resolve_served_model

        encoder = OnnxEncoder(resolve_served_model(args.model), threads=args.threads)
        report = ingest(
            es,
            args.index,
            encoder,
            args.input,
            batch_size=args.batch_size,
            pipeline=args.pipeline,
            failures_path=failures,
            index_options=options,
            chunking=chunking,
        )
    print(json.dumps(report.as_dict()) if args.json else report.summary())
    return 1 if report.failed else 0


def run_in_engine(es, args: argparse.Namespace, failures: Path, options, chunking):
    """Raw JSONL through the index's `xlir-<model>` default pipeline (the plugin embeds, and
    with `chunking` cuts the passages)."""
    from ..engine import engine_ingest
    from .es_model import installed_model

    why = "the index's default pipeline xlir-<model> embeds the documents"
    model = installed_model(es, args, pipeline=why)
    return engine_ingest(
        es,
        args.index,
        model,
        args.input,
        failures_path=failures,
        index_options=options,
        chunking=chunking,
    )
