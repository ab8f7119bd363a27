"""The routes: `/v1/embeddings`, `/v1/search`, `/v1/models`, `/health`, `/ready`, `/metrics`.

`build_app(encoder, ...)` returns the ASGI app; `xlir serve` (commands/serve.py) runs it on
uvicorn. Request bodies and texts are never logged; an unexpected error is logged by its
type alone and answered 500 with a JSON body, and the server goes on.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from dataclasses import dataclass

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..encoder import OnnxEncoder
from ..errors import InputError, ModelMismatch, XlirError
from ..index import cached_meta
from ..schema import check_meta
from ..search import lang_filter, search_vector
from .api_errors import ApiError
from .auth import KeyCheck
from .batcher import Batcher, Closed, QueueFull
from .cluster import Cluster
from .limits import Limits
from .metrics import Metrics, MetricsMiddleware
from .schemas import parse_embeddings, parse_search, read_json

log = logging.getLogger(__name__)
#: texts shorter than this (in all) are tokenized on the event loop: a thread hop costs more
INLINE_TOKENIZE_CHARS = 2_000


@dataclass
class Served:
    """What the handlers share."""

    encoder: OnnxEncoder
    limits: Limits
    keys: KeyCheck
    cluster: Cluster
    metrics: Metrics
    batcher: Batcher
    model_ids: tuple[str, ...]  # the served model's name first, then its aliases
    default_index: str | None = None

    def check_model(self, model: str | None) -> None:
        if model is not None and model not in self.model_ids:
            raise ApiError(
                404,
                f"the model {model!r} does not exist here; this server has {self.model_ids[0]!r}",
                "model_not_found",
            )

    async def embed(self, texts: list[str], kind: str) -> tuple[np.ndarray, int]:
        """Vectors for `texts` through the batcher, and their token count."""
        with self.batcher.arriving():
            if sum(map(len, texts)) < INLINE_TOKENIZE_CHARS:
                encodings = self.encoder.tokenize(texts, kind)
            else:
                encodings = await run_in_threadpool(self.encoder.tokenize, texts, kind)
        tokens = sum(len(e.ids) for e in encodings)
        try:
            vectors = await self.batcher.submit(encodings)
        except QueueFull as full:
            raise ApiError(
                429, str(full), "queue_full", {"Retry-After": str(full.retry_after)}
            ) from None
        except Closed:
            raise ApiError(503, "the server is shutting down", "shutting_down") from None
        self.metrics.texts.labels(kind).inc(len(texts))
        self.metrics.tokens.inc(tokens)
        self.metrics.truncated.inc(sum(1 for e in encodings if e.overflowing))
        return vectors, tokens


def build_app(
    encoder: OnnxEncoder,
    limits: Limits | None = None,
    keys: KeyCheck | None = None,
    cluster: Cluster | None = None,
    aliases: tuple[str, ...] = ("default",),
    default_index: str | None = None,
) -> Starlette:
    """The ASGI app serving `encoder` (and searching `cluster`, when it has an engine)."""
    limits = limits or Limits()
    metrics = Metrics()
    served = Served(
        encoder,
        limits,
        keys or KeyCheck([]),
        cluster or Cluster(None),
        metrics,
        Batcher(encoder, limits, metrics),
        (encoder.model_name, *(a for a in aliases if a != encoder.model_name)),
        default_index,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await served.batcher.start()
        try:
            yield
        finally:  # uvicorn has answered every request in flight by now
            await served.batcher.close()
            served.cluster.close()

    routes = [
        Route("/v1/embeddings", _handler(served, embeddings), methods=["POST"]),
        Route("/v1/search", _handler(served, search), methods=["POST"]),
        Route("/v1/models", _handler(served, models), methods=["GET"]),
        Route("/health", _open(health), methods=["GET"]),
        Route("/ready", _open(ready, served), methods=["GET"]),
        Route("/metrics", _open(metrics_page, served), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.served = served
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


# -- handlers ---------------------------------------------------------------------------------


async def embeddings(served: Served, request: Request) -> Response:
    """OpenAI's embeddings call, plus `input_type` (query | passage) for the model's prefix."""
    body = await read_json(request, served.limits)
    req = parse_embeddings(body, served.limits, served.encoder.dim)
    served.check_model(req.model)
    vectors, tokens = await served.embed(req.texts, req.kind)
    if req.base64:  # what the openai client asks for by default: little-endian float32
        rows = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
    else:
        rows = vectors.tolist()
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    model = served.model_ids[0]
    return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})


async def search(served: Served, request: Request) -> Response:
    """`xlir search` over HTTP: the query embedded through the batcher, then `search.py`."""
    body = await read_json(request, served.limits)
    req = parse_search(body, served.limits, served.default_index)
    served.check_model(body.get("model"))
    opts = req.options
    try:
        lang_filter(opts["mode"], opts["lang"], opts["targets"])  # bad modes fail first
        es = await run_in_threadpool(served.cluster.client)
        try:
            meta = await run_in_threadpool(cached_meta, es, req.index)
        except InputError as exc:  # missing, or not made by xlir
            raise ApiError(422, str(exc), "index_not_usable") from None
        check_meta(req.index, meta, served.encoder.manifest)
        vectors, _ = await served.embed([req.text], "query")
        hybrid_text = req.text if req.hybrid else None
        hits = await run_in_threadpool(
            lambda: search_vector(es, req.index, vectors[0], **opts, hybrid_text=hybrid_text)
        )
    except InputError as exc:
        raise ApiError(400, str(exc), "invalid_search") from None
    except ModelMismatch as exc:
        raise ApiError(409, str(exc), "model_mismatch") from None
    except XlirError as exc:  # the index is missing, the engine refused the query ...
        raise ApiError(422, str(exc), "search_failed") from None
    result = {"object": "list", "index": req.index, "hits": [h.as_dict() for h in hits]}
    return JSONResponse(result)


async def models(served: Served, request: Request) -> Response:
    data = [{"id": served.model_ids[0], "object": "model", "created": 0, "owned_by": "xlir"}]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(served: Served, request: Request) -> Response:
    """200 when the model is loaded and the engine answers; 503 with the reason otherwise."""
    up, engine = await run_in_threadpool(served.cluster.reachable)
    body = {
        "status": "ready" if up else "not ready",
        "model": served.model_ids[0],
        "engine": engine,
    }
    return JSONResponse(body, status_code=200 if up else 503)


async def metrics_page(served: Served, request: Request) -> Response:
    return Response(served.metrics.exposition(), media_type=served.metrics.content_type)


# -- plumbing ---------------------------------------------------------------------------------


def _handler(served: Served, handler):
    """A `/v1/*` route: the API key first, then the handler; ApiError becomes its response."""

    async def endpoint(request: Request) -> Response:
        try:
            served.keys.check(request.headers.get("authorization"))
            return await handler(served, request)
        except ApiError as exc:
            return exc.response()
        except Exception as exc:  # answered, and the server goes on; no body in the log
            return await _server_error(request, exc)

    return endpoint


def _open(handler, served: Served | None = None):
    """A route without a key (`/health`, `/ready`, `/metrics`: probes and scrapers)."""

    async def endpoint(request: Request) -> Response:
        return await (handler(request) if served is None else handler(served, request))

    return endpoint


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return ApiError(exc.status_code, str(exc.detail), None).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
    log.debug("internal error", exc_info=exc)
    return ApiError(500, "internal server error", "internal_error").response()
