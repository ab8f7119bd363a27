"""`xlir demo`: the main job, from nothing to cross-lingual answers on a local Elasticsearch."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cli import add_es_flags
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
    parser.add_argument("--target", help="comma-separated passage languages for --query")
    parser.add_argument("--hits", type=int, default=3, help="hits shown per question")
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def connect_or_start(args: argparse.Namespace):
    """The cluster named by flags/environment, else the local node (started if needed)."""
    from ..connection import EsSettings, connect, resolve_settings
    from .es import ensure_started

    flags = dict(
        url=args.es_url, api_key=args.es_api_key, user=args.es_user,
        password=args.es_password, ca_certs=args.es_ca_certs,
    )  # fmt: skip
    settings = resolve_settings(**flags)
    if not settings.url:
        start = time.perf_counter()
        info, started = ensure_started()
        if started:
            print(
                f"started Elasticsearch {info.version} at {info.url} in {time.perf_counter() - start:.0f}s"
            )
        settings = EsSettings(url=info.url, user=info.user, password=info.password)
    return connect(settings), settings.url


def run(args: argparse.Namespace) -> int:
    from ..encoder import OnnxEncoder
    from ..models import resolve_served_model

    es, url = connect_or_start(args)
    print(f"Elasticsearch: {url}")
    start = time.perf_counter()
    encoder = OnnxEncoder(resolve_served_model(args.model))
    print(
        f"model: {encoder.model_name} ({encoder.dim} dims), ready in {time.perf_counter() - start:.0f}s"
    )
    if args.input:
        return run_custom(es, encoder, args)
    return run_pool(es, encoder, args)


def run_pool(es, encoder, args: argparse.Namespace) -> int:
    from ..demo import DEMO_INDEX, run_pool_demo
    from .search import format_hits

    data = args.data or data_dir() / "xquad-r"
    result = run_pool_demo(es, encoder, data, index=args.index or DEMO_INDEX)
    for answer in result.answers:
        rank = f"answer at rank {answer.rank}" if answer.rank else "answer not in the top 10"
        print(f"\n[{answer.query_lang} -> {answer.target_lang}] {answer.question}   ({rank})")
        shown = answer.hits[: args.hits]
        if answer.rank and answer.rank > args.hits:
            shown.append(answer.hits[answer.rank - 1])
        print(format_hits(shown))
    found = sum(a.rank is not None for a in result.answers)
    print("\n" + "=" * 60)
    if result.report:
        r = result.report
        print(
            f"indexed {r.indexed} of {r.read} passages ({r.failed} failed) in {r.seconds:.1f}s: {r.docs_per_s:.0f} docs/s"
        )
    else:
        print(f"reused index {args.index or DEMO_INDEX} ({result.documents} passages, same model)")
    print(f"answers found in the top 10: {found} of {len(result.answers)} cross-lingual questions")
    print(
        f"query latency (encode + kNN search), {len(result.latencies_ms)} queries: "
        f"p50 {result.percentile(50):.1f} ms, p95 {result.percentile(95):.1f} ms"
    )
    print(
        "try: xlir search --index xlir-demo-xquad-r --lang de --mode cross --target en 'Wer ...?'"
    )
    return 0


def run_custom(es, encoder, args: argparse.Namespace) -> int:
    from ..ingest import ingest
    from ..search import search
    from .search import format_hits

    index = args.index or "xlir-demo-custom"
    failures = args.input.with_name(args.input.name + ".failures.jsonl")
    report = ingest(es, index, encoder, args.input, failures_path=failures)
    print(report.summary())
    mode = "cross" if args.target else "multilingual"
    for query in args.query:
        hits = search(
            es, index, encoder, query, mode=mode, lang=args.lang, targets=args.target, k=args.hits
        )
        print(f"\n{query}\n{format_hits(hits)}")
    return 1 if report.failed else 0
