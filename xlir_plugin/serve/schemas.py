"""Request bodies: read within limits, checked, turned into what the handlers need.

A body over `max_body_bytes`, more than `max_request_texts` inputs or one text over
`max_text_chars` is refused with 413 before any tokenizing: the limits bound the work one
request can ask for. Everything else malformed is a 400 naming the field (and the index of
an offending input, never its text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .api_errors import ApiError
from .limits import Limits

INPUT_TYPES = ("query", "passage")
ENCODING_FORMATS = ("float", "base64")


@dataclass(frozen=True)
class EmbeddingsRequest:
    texts: list[str]
    kind: str  # "query" or "passage": the model's prefix
    base64: bool
    model: str | None


@dataclass(frozen=True)
class SearchRequest:
    text: str
    index: str
    options: dict[str, Any]  # keyword arguments of `search.search_vector`
    hybrid: bool


async def read_json(request: Request, limits: Limits) -> dict[str, Any]:
    """The body as a JSON object; 413 past `max_body_bytes` (counted as it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _too_large(f"the body is {declared} bytes, over the limit of {limits.max_body_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise _too_large(f"the body is over the limit of {limits.max_body_bytes} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_json")
    return body


def parse_embeddings(body: dict[str, Any], limits: Limits, dim: int) -> EmbeddingsRequest:
    """`input` (a string or a list of strings), `model`, `encoding_format`, `input_type`,
    `dimensions` (only the model's own), `user` (ignored)."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list):
        raise _invalid("input", "`input` must be a string or a list of strings")
    if not texts:
        raise _invalid("input", "`input` must not be empty")
    if len(texts) > limits.max_request_texts:
        raise _too_large(
            f"`input` has {len(texts)} items, over the limit of {limits.max_request_texts}"
        )
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise _invalid("input", f"`input[{i}]` is {type(text).__name__}, not a string")
        if not text.strip():
            raise _invalid("input", f"`input[{i}]` is empty")
        if len(text) > limits.max_text_chars:
            raise _too_large(
                f"`input[{i}]` has {len(text)} characters, over the limit of "
                f"{limits.max_text_chars}"
            )
    kind = _choice(body, "input_type", INPUT_TYPES, "passage")
    encoding = _choice(body, "encoding_format", ENCODING_FORMATS, "float")
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != dim:
        raise _invalid("dimensions", f"`dimensions` must be this model's {dim} (or left out)")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _invalid("model", "`model` must be a string")
    return EmbeddingsRequest(texts, kind, encoding == "base64", model)


def parse_search(body: dict[str, Any], limits: Limits, default_index: str | None) -> SearchRequest:
    """`text` (or `query`), `index`, `mode`, `lang`, `targets`, `k`, `num_candidates`,
    `rescore`, `hybrid`, `filter` (engine query clauses): `xlir search`'s flags."""
    text = body.get("text", body.get("query"))
    if not isinstance(text, str) or not text.strip():
        raise _invalid("text", "`text` must be a non-empty string")
    if len(text) > limits.max_text_chars:
        raise _too_large(f"`text` is over the limit of {limits.max_text_chars} characters")
    index = body.get("index", default_index)
    if not isinstance(index, str) or not index:
        raise _invalid("index", "`index` must name the index (or start the server with --index)")
    options = {
        "mode": body.get("mode", "multilingual"),
        "lang": body.get("lang"),
        "targets": body.get("targets"),
        "k": body.get("k", 10),
        "num_candidates": body.get("num_candidates"),
        "rescore": body.get("rescore"),
        "filter": body.get("filter"),
    }
    for name in ("mode", "lang"):
        if options[name] is not None and not isinstance(options[name], str):
            raise _invalid(name, f"`{name}` must be a string")
    for name in ("k", "num_candidates"):
        value = options[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _invalid(name, f"`{name}` must be an integer")
    rescore = options["rescore"]
    if rescore is not None and not isinstance(rescore, (bool, int, float)):
        raise _invalid("rescore", "`rescore` must be true, false or an oversample factor")
    if options["filter"] is not None and not isinstance(options["filter"], (dict, list)):
        raise _invalid("filter", "`filter` must be a query clause or a list of them")
    hybrid = body.get("hybrid", False)
    if not isinstance(hybrid, bool):
        raise _invalid("hybrid", "`hybrid` must be true or false")
    return SearchRequest(text, index, options, hybrid)


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise _invalid(name, f"`{name}` must be one of {', '.join(allowed)}")
    return value


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(400, message, f"invalid_{param}")


def _too_large(message: str) -> ApiError:
    return ApiError(413, message, "request_too_large")
