"""Prometheus metrics: requests, errors, latency, batch sizes, queue depth.

One registry per app (not the process-global one), so two apps in one process (tests) do
not collide. Routes are labelled by their template, never by what a client typed, so the
label sets stay few.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ROUTES = ("/v1/embeddings", "/v1/search", "/v1/models", "/health", "/ready", "/metrics")
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)


class Metrics:
    """The server's instruments, in their own registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "xlir_requests", "HTTP requests answered", ["route", "status"], registry=r
        )
        self.errors = Counter(
            "xlir_request_errors",
            "HTTP requests answered 4xx or 5xx",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "xlir_request_latency_seconds",
            "time from request to response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "xlir_batch_texts", "texts per encoder batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "xlir_batch_requests", "requests per encoder batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "xlir_batch_tokens", "tokens per encoder batch", buckets=TOKEN_BUCKETS, registry=r
        )
        self.queue_texts = Gauge("xlir_queue_texts", "texts waiting to be encoded", registry=r)
        self.queue_requests = Gauge(
            "xlir_queue_requests", "requests waiting to be encoded", registry=r
        )
        self.rejected = Counter(
            "xlir_queue_rejected", "requests refused with 429 (queue full)", registry=r
        )
        self.texts = Counter("xlir_texts_embedded", "texts embedded", ["input_type"], registry=r)
        self.tokens = Counter("xlir_tokens_embedded", "tokens embedded", registry=r)
        self.truncated = Counter(
            "xlir_texts_truncated", "texts cut at the model's max length", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request and counts it by route and status (pure ASGI: no body
    buffering, unlike Starlette's BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in ROUTES else "other"
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
            self.metrics.requests.labels(route, str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(route, str(status)).inc()
