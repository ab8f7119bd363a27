"""`xlir serve`: the OpenAI-compatible embeddings API and the search API on uvicorn."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from ..connection_flags import add_es_flags, settings_from_args
from ..errors import XlirError

log = logging.getLogger("xlir.serve")


def register(verbs: argparse._SubParsersAction) -> None:
    from ..serve.limits import Limits

    parser = verbs.add_parser(
        "serve", help="serve embeddings (OpenAI-compatible) and search over HTTP"
    )
    parser.add_argument("--model", default="default", help="exported model dir, or `default`")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument("--threads", type=int, help="onnxruntime threads (default: all cores)")
    parser.add_argument(
        "--api-key-file", help="bearer keys, one a line (also XLIR_API_KEYS, comma-separated)"
    )
    parser.add_argument("--index", help="the index /v1/search uses when a request names none")
    parser.add_argument(
        "--no-engine", action="store_true", help="embeddings only: no search engine, ever"
    )
    limits = parser.add_argument_group("limits (413 past the first three, 429 past the queue)")
    defaults = Limits()
    for name, text in (
        ("max_request_texts", "inputs per request"),
        ("max_text_chars", "characters per input"),
        ("max_body_bytes", "bytes per request body"),
        ("max_queue_texts", "texts waiting to be encoded"),
        ("max_batch_texts", "texts per encoder batch"),
        ("max_batch_tokens", "tokens per encoder batch"),
        ("max_wait_ms", "ms a batch may wait for requests still arriving"),
    ):
        default = getattr(defaults, name)
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=type(default), default=default, help=f"{text} ({default})")
    add_es_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..encoder import OnnxEncoder
    from ..models import resolve_served_model
    from ..serve.app import build_app
    from ..serve.auth import KeyCheck, load_keys
    from ..serve.cluster import Cluster
    from ..serve.limits import Limits

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for chatty in ("elastic_transport", "opensearch"):  # a line per engine request at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    start = time.monotonic()
    limits = Limits(**{name: getattr(args, name) for name in Limits.__dataclass_fields__})
    if limits.max_request_texts > limits.max_queue_texts:
        raise XlirError(
            "{max_request_texts} must not exceed {max_queue_texts}",
            arguments=["max_request_texts", "max_queue_texts"],
        )
    keys = KeyCheck(load_keys(args.api_key_file))
    cluster = Cluster(None if args.no_engine else settings_from_args(args))
    encoder = OnnxEncoder(resolve_served_model(args.model), threads=args.threads)
    app = build_app(encoder, limits, keys, cluster, aliases=(args.model,), default_index=args.index)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=False,  # paths and clients only, but nothing the metrics do not count
        log_level="warning",
        timeout_graceful_shutdown=60,
        http="httptools" if _has("httptools") else "h11",
    )
    server = uvicorn.Server(config)
    log.info(
        "model %s (%d dims, %d threads) loaded in %.1f s; API keys: %s; search engine: %s",
        encoder.model_name,
        encoder.dim,
        encoder.threads,
        time.monotonic() - start,
        keys.describe(),
        cluster.describe(),
    )
    log.info(
        "serving on http://%s:%d (SIGTERM: finish requests in flight, then exit)",
        args.host,
        args.port,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1") and not keys.enabled:
        log.warning("listening on %s without API keys: anyone who reaches it may use it", args.host)
    # uvicorn re-raises the signal it caught once it has shut down; with this handler in
    # place the process then exits 0 after a clean SIGTERM shutdown instead of dying by it
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    if not server.started:
        raise XlirError(f"could not listen on {args.host}:{args.port} (see the log above)")
    log.info("stopped")
    sys.stdout.flush()
    return 0


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
