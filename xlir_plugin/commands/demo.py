"""`xlir demo`: the main job, from nothing to cross-lingual answers on a local Elasticsearch."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from ..connection import public_url
from ..connection_flags import add_es_flags, settings_from_args
from ..paths import data_dir


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "demo",
        help="index the XQuAD-R pool (11 languages) and answer questions across languages",
        description="Starts (or uses) Elasticsearch, builds the default int8 model once, indexes "
        "every XQuAD-R sentence and asks sample questions in one language about passages in another.",
    )
    parser.add_argument("--model", default="default", help="exported model dir, or `default`")
    parser.add_argument("--data", type=Path, help="LAReQA dir (default: shared xquad-r)")
    parser.add_argument(
        "--index", help="index name (default: xlir-demo-xquad-r, or xlir-demo-custom)"
    )
    parser.add_argument("--input", type=Path, help="index your own JSONL documents instead")
    parser.add_argument(
        "--query", action="append", default=[], help="a question to ask (repeatable)"
    )
    parser.add_argument("--lang", help="language of --query (for the cross mode)")
    parser.add_argument(
        "--target", dest="targets", help="comma-separated passage languages for --query"
    )
    parser.add_argument("--hits", type=int, default=3, help="hits shown per question")
    parser.add_argument(
        "--client-side",
        action="store_true",
        help="embed in Python and send vectors (default: in Elasticsearch, the xlir plugin)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the outcome as one JSON object on stdout"
    )
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def connect_or_start(args: argparse.Namespace, say: TextIO):
    """The cluster named by flags/environment, else the local node (started if needed)."""
    from ..connection import connect
    from . import es, opensearch
    from .node import node_settings

    settings = settings_from_args(args)
    if not settings.url:
        start = time.perf_counter()
        local = opensearch if settings.engine == "opensearch" else es
        info, started = local.ensure_local()
        if started:
            print(
                f"started {local.node.LABEL} {info.version} at {info.url} in {time.perf_counter() - start:.0f}s",
                file=say,
            )
        settings = node_settings(info)
    args.settings = settings  # for `xlir es install-model` (in-engine)
    return connect(settings), public_url(settings.url)


def run(args: argparse.Namespace) -> int:
    """Progress lines go to stdout, or to stderr with --json (stdout is then the JSON alone)."""
    from ..encoder import OnnxEncoder
    from ..engines import engine_named
    from ..models import resolve_served_model

    say = sys.stderr if args.json else sys.stdout
    es, url = connect_or_start(args, say)
    label = engine_named(args.settings.engine).label
    print(f"{label}: {url}", file=say)
    start = time.perf_counter()
    encoder = None
    if not args.client_side:
        from ..engine import PluginMissing
        from ..engine_install import ensure_installed

        try:
            encoder = ensure_installed(es, args.settings, args.model)
        except PluginMissing:
            print(f"no xlir plugin on {url}: embedding in Python (--client-side)", file=say)
            args.client_side = True
    if encoder is None:
        encoder = OnnxEncoder(resolve_served_model(args.model))
    where = "client side" if args.client_side else f"in {label} as {encoder.name!r}"
    print(
        f"model: {encoder.model_name} ({encoder.dim} dims, {where}), ready in {time.perf_counter() - start:.0f}s",
        file=say,
    )
    if args.input:
        return run_custom(es, encoder, args, url)
    return run_pool(es, encoder, args, url)


def run_pool(es, encoder, args: argparse.Namespace, url: str) -> int:
    from ..demo import DEMO_INDEX, run_pool_demo
    from .search import format_hits

    index = args.index or DEMO_INDEX
    result = run_pool_demo(es, encoder, args.data or data_dir() / "xquad-r", index=index)
    if args.json:
        summary = {args.settings.engine: url, "model": encoder.model_name, "index": index}
        print(json.dumps(summary | result.as_dict(), ensure_ascii=False))
        return 0
    for answer in result.answers:
        rank = f"answer at rank {answer.rank}" if answer.rank else "answer not in the top 10"
        print(f"\n[{answer.query_lang} -> {answer.target_lang}] {answer.question}   ({rank})")
        shown = answer.hits[: args.hits]
        if answer.rank and answer.rank > args.hits:
            shown.append(answer.hits[answer.rank - 1])
        print(format_hits(shown))
    print("\n" + "=" * 60)
    if result.report:
        r = result.report
        print(
            f"indexed {r.indexed} of {r.read} passages ({r.failed} failed) in {r.seconds:.1f}s: {r.docs_per_s:.0f} docs/s"
        )
    else:
        print(f"reused index {index} ({result.documents} passages, same model)")
    print(
        f"answers found in the top 10: {result.found} of {len(result.answers)} cross-lingual questions"
    )
    print(
        f"query latency (encode + kNN search), {len(result.latencies_ms)} queries: "
        f"p50 {result.percentile(50):.1f} ms, p95 {result.percentile(95):.1f} ms"
    )
    print(f"try: xlir search --index {index} --lang de --mode cross --target en 'Wer ...?'")
    return 0


def run_custom(es, encoder, args: argparse.Namespace, url: str) -> int:
    from ..engine import EngineModel, engine_ingest, engine_search
    from ..ingest import ingest
    from ..search import search
    from .search import format_hits

    index = args.index or "xlir-demo-custom"
    failures = args.input.with_name(args.input.name + ".failures.jsonl")
    in_engine = isinstance(encoder, EngineModel)
    report = (engine_ingest if in_engine else ingest)(
        es, index, encoder, args.input, failures_path=failures
    )
    mode = "cross" if args.targets else "multilingual"
    answers = [
        (query, (engine_search if in_engine else search)(
            es, index, encoder, query, mode=mode, lang=args.lang, targets=args.targets, k=args.hits))
        for query in args.query
    ]  # fmt: skip
    if args.json:
        summary = {args.settings.engine: url, "model": encoder.model_name, "index": index}
        summary["indexed"] = report.as_dict()
        summary["queries"] = [
            {"query": query, "hits": [hit.as_dict() for hit in hits]} for query, hits in answers
        ]
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(report.summary())
        for query, hits in answers:
            print(f"\n{query}\n{format_hits(hits)}")
    return 1 if report.failed else 0
