"""What one request may ask and how requests are batched: the `xlir serve` limit flags.

Apart from the request parsing so that the command line reads the defaults without loading
the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one request may ask and how requests are batched (the `xlir serve` flags)."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_request_texts: int = 2048  # OpenAI's own limit on `input` items
    max_text_chars: int = 100_000  # the model reads 512 tokens; more is truncated anyway
    max_batch_texts: int = 64
    max_batch_tokens: int = 16_384
    max_wait_ms: float = 2.0
    max_queue_texts: int = 8192
