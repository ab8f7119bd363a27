"""Input documents: where they come from, their ids, and what makes one indexable.

Documents come from a JSONL path (`.gz` too), a Hugging Face `datasets.Dataset` or any
iterable of dicts. Each needs `text` and `lang`; `id`, `title`, `embedding` (a precomputed
vector) and any other fields are optional. The Elasticsearch `_id` is the given `id`, else a
hash of lang + text, so a re-run overwrites instead of duplicating. A document that cannot
be read or indexed becomes a `Failure` with its line number and reason, never a silent drop.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .schema import VECTOR_FIELD

MAX_ID_BYTES = 512


@dataclass
class Doc:
    """One input document and where it came from (1-based line or row number)."""

    line: int | None
    source: Any


@dataclass
class Failure:
    """A document that was not indexed, and why."""

    line: int | None
    id: str | None
    reason: str
    stage: str = "validate"  # read | validate | index
    status: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def read_jsonl(path: str | Path) -> Iterator[Doc | Failure]:
    """One `Doc` per non-blank line (`.gz` read transparently); bad lines become `Failure`s,
    and so does the end of a compressed file cut short (a cut last line is bad JSON)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    with opener(path, "rb") as f:
        lines = iter(f)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as exc:  # a compressed file cut short
                yield Failure(number + 1, None, f"file ends early: {exc}", "read")
                return
            number += 1
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield Failure(number, None, f"line is not UTF-8: {exc}", "read")
                continue
            except json.JSONDecodeError as exc:
                yield Failure(number, None, f"bad JSON: {exc.msg} at column {exc.colno}", "read")
                continue
            yield Doc(number, data)


def iter_documents(source: Any) -> Iterator[Doc | Failure]:
    """Documents from a JSONL path, a `datasets.Dataset`, or an iterable of dicts/Docs."""
    if isinstance(source, (str, Path)):
        yield from read_jsonl(source)
        return
    if isinstance(source, dict):
        raise InputError("expected documents, got a single dict (wrap it in a list)")
    for number, item in enumerate(source, start=1):  # Dataset rows iterate as dicts
        yield item if isinstance(item, (Doc, Failure)) else Doc(number, item)


def count_documents(source: Any) -> int | None:
    """How many records `source` holds when that is cheap to know (for the progress bar)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file() or path.suffix == ".gz":
            return None
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    try:
        return len(source)
    except TypeError:
        return None


def doc_id(doc: dict[str, Any]) -> str:
    """The Elasticsearch `_id`: the document's own `id`, else sha1 of lang + "\\n" + text."""
    given = doc.get("id")
    if given is not None and given != "":
        return str(given)
    return hashlib.sha1(f"{doc['lang']}\n{doc['text']}".encode()).hexdigest()


class InvalidDocument(Exception):
    """A document that cannot be indexed; the message is the reason."""


def prepare(doc: Any, dims: int) -> tuple[str, dict[str, Any], list[float] | None]:
    """Validate one document: (`_id`, source without the vector, vector or None).

    Raises `InvalidDocument` with a reason for anything Elasticsearch would reject or that
    would index garbage.
    """
    if not isinstance(doc, dict):
        raise InvalidDocument(f"document is {type(doc).__name__}, not a JSON object")
    for key in ("text", "lang"):
        if key not in doc or doc[key] is None:
            raise InvalidDocument(f"missing `{key}`")
        if not isinstance(doc[key], str):
            raise InvalidDocument(f"`{key}` is {type(doc[key]).__name__}, not a string")
        if not doc[key].strip():
            raise InvalidDocument(f"`{key}` is empty")
    given = doc.get("id")
    if given is not None and (not isinstance(given, (str, int)) or isinstance(given, bool)):
        raise InvalidDocument(f"`id` is {type(given).__name__}, not a string or integer")
    for key in doc:
        if not isinstance(key, str) or key.startswith("_"):
            raise InvalidDocument(
                f"field {key!r} is reserved (names starting with '_' are metadata)"
            )
    body = {k: v for k, v in doc.items() if k != VECTOR_FIELD}
    body["lang"] = doc["lang"].strip().lower()
    _id = doc_id(body)
    if len(_id.encode()) > MAX_ID_BYTES:
        raise InvalidDocument(f"`id` is longer than {MAX_ID_BYTES} bytes")
    body["id"] = _id
    vector = doc.get(VECTOR_FIELD)
    if vector is not None:
        vector = _check_vector(vector, dims)
    return _id, body, vector


def _check_vector(vector: Any, dims: int) -> list[float]:
    if hasattr(vector, "tolist"):  # numpy arrays
        vector = vector.tolist()
    if not isinstance(vector, (list, tuple)):
        raise InvalidDocument(f"`{VECTOR_FIELD}` is {type(vector).__name__}, not a list of numbers")
    if len(vector) != dims:
        raise InvalidDocument(f"`{VECTOR_FIELD}` has {len(vector)} dims, the index expects {dims}")
    out = []
    for x in vector:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise InvalidDocument(f"`{VECTOR_FIELD}` holds {x!r}, not a finite number")
        out.append(float(x))
    if not any(out):
        raise InvalidDocument(f"`{VECTOR_FIELD}` is all zeros (no direction to compare)")
    return out
