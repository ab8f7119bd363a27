"""`xlir eval`: the paper's XQuAD-R protocol on the serving path (ONNX + Elasticsearch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import add_es_flags, es_from_args
from ..paths import data_dir


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("eval", help="Mono/Cross/Multi mAP and language bias on LAReQA data")
    parser.add_argument("--model", default="default", help="exported model dir, or `default`")
    parser.add_argument(
        "--data", type=Path, default=None, help="LAReQA dir (default: shared xquad-r)"
    )
    parser.add_argument("--backend", choices=["exact", "es", "both"], default="both")
    parser.add_argument("--langs", help="comma-separated subset of languages")
    parser.add_argument("--max-queries", type=int, help="first N question ids only (quick runs)")
    parser.add_argument(
        "--context", action="store_true", help="encode sentence + paragraph (LAReQA)"
    )
    parser.add_argument("--es-depth", type=int, default=100, help="kNN k for the ES backend")
    parser.add_argument(
        "--num-candidates", type=int, help="kNN num_candidates (default max(100, 10k))"
    )
    parser.add_argument("--output", type=Path, help="output dir (default runs/eval-<model>)")
    parser.add_argument("--threads", type=int, help="onnxruntime threads")
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..encoder import OnnxEncoder
    from ..evaluation import evaluate
    from ..evaluation.report import write_outputs
    from ..models import resolve_served_model

    backends = ("exact", "es") if args.backend == "both" else (args.backend,)
    es = es_from_args(args) if "es" in backends else None
    encoder = OnnxEncoder(resolve_served_model(args.model), threads=args.threads)
    result = evaluate(
        encoder,
        args.data or data_dir() / "xquad-r",
        es=es,
        backends=backends,
        langs=args.langs.split(",") if args.langs else None,
        max_queries=args.max_queries,
        context=args.context,
        es_depth=args.es_depth,
        num_candidates=args.num_candidates,
    )
    out = (
        args.output
        or Path("runs") / f"eval-{encoder.model_name.replace('/', '_').replace('@', '-')}"
    )
    paths = write_outputs(result, out)
    print(result.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
