"""`xlir eval`: the paper's XQuAD-R protocol on the serving path (ONNX + Elasticsearch)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..connection_flags import add_es_flags, es_from_args
from ..paths import data_dir
from ..schema import default_index_spec


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "eval",
        help="Mono/Cross/Multi mAP and language bias on LAReQA data (XQuAD-R, MLQA-R)",
        description="Encode a LAReQA-format set once, rank with exact numpy and/or the engine's "
        "kNN (backend es: Elasticsearch, or OpenSearch with --engine opensearch) over the same "
        "vectors, and write results.json, results.md and cross_map.png.",
    )
    parser.add_argument("--model", default="default", help="exported ONNX model dir, or `default`")
    parser.add_argument(
        "--data", type=Path, default=None, help="LAReQA dir (default: the shared xquad-r)"
    )
    parser.add_argument("--backend", choices=["exact", "es", "both"], default="both")
    parser.add_argument("--langs", help="comma-separated subset of languages, e.g. en,de,zh")
    parser.add_argument("--max-queries", type=int, help="first N questions per language")
    parser.add_argument(
        "--context",
        action="store_true",
        help="encode each candidate as sentence + paragraph (LAReQA); default: sentence only",
    )
    parser.add_argument(
        "--depth", type=int, help="mAP depth for the exact backend (default: the whole pool)"
    )
    parser.add_argument(
        "--es-depth", type=int, default=100, help="kNN k for the ES backend (default 100)"
    )
    parser.add_argument(
        "--num-candidates", type=int, help="kNN num_candidates (default: the search default)"
    )
    parser.add_argument(
        "--index-options",
        help=f"vector index_options spec, e.g. hnsw or flat (default: {default_index_spec()})",
    )
    parser.add_argument("--keep-index", action="store_true", help="keep the evaluation index")
    parser.add_argument("--output", type=Path, help="output dir (default runs/eval-<model>)")
    parser.add_argument(
        "--vectors-cache",
        type=Path,
        help="an .npz file: reuse the candidate and/or query vectors it holds for this model and "
        "these texts; write it when anything was encoded",
    )
    parser.add_argument("--threads", type=int, help="onnxruntime threads")
    parser.add_argument(
        "--json", action="store_true", help="print results.json's figures instead of the tables"
    )
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..encoder import OnnxEncoder
    from ..evaluation import evaluate
    from ..evaluation.report import write_outputs

    _check_eval_extra()
    backends = ("exact", "es") if args.backend == "both" else (args.backend,)
    es = es_from_args(args) if "es" in backends else None
    model_dir = Path(args.model)
    if not (model_dir / "xlir.json").is_file():
        from ..models import resolve_served_model

        model_dir = resolve_served_model(args.model)
    encoder = OnnxEncoder(model_dir, threads=args.threads)
    result = evaluate(
        encoder,
        args.data or data_dir() / "xquad-r",
        es=es,
        backends=backends,
        langs=[x.strip() for x in args.langs.split(",") if x.strip()] if args.langs else None,
        max_queries=args.max_queries,
        context=args.context,
        depth=args.depth,
        es_depth=args.es_depth,
        num_candidates=args.num_candidates,
        index_options=args.index_options,
        keep_index=args.keep_index,
        vectors_cache=args.vectors_cache,
    )
    out = args.output or Path("runs") / f"eval-{re.sub(r'[^A-Za-z0-9._-]+', '-', model_dir.name)}"
    paths = write_outputs(result, out)
    if args.json:
        print(result.to_json(), end="")
    else:
        print(result.to_markdown())
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _check_eval_extra() -> None:
    """Before minutes of encoding: the scoring (ranx) and plotting (matplotlib) packages are
    the `[eval]` extra, not part of the serving install."""
    from importlib.util import find_spec

    from ..errors import InputError

    missing = [name for name in ("ranx", "matplotlib") if find_spec(name) is None]
    if missing:
        raise InputError(
            f"xlir eval needs {' and '.join(missing)}: `pip install 'xlir[eval]'` "
            "(or `bash scripts/setup.sh --dev`)"
        )
