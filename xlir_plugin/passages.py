"""A chunked index's side of a search: which passages come back with a document, and how.

A chunked index (`ingest(..., chunking=...)`) holds one document per input document, with its
passages in the nested field `passages` ({start, end, embedding}). A kNN search finds the
documents whose passages are nearest; each hit is the document, scored by its best passage,
with its `PASSAGE_HITS` best passages (offsets into `text`, score, and the text they cover).
"""

from __future__ import annotations

from typing import Any

from .schema import PASSAGES_FIELD, VECTOR_FIELD

#: the best passages returned with each document
PASSAGE_HITS = 3
PASSAGE_OFFSETS = [f"{PASSAGES_FIELD}.start", f"{PASSAGES_FIELD}.end"]
#: never sent back with a hit: the vectors
UNRETURNED = [VECTOR_FIELD, PASSAGES_FIELD]


def passages_of(raw: dict[str, Any], text: str | None) -> list[dict[str, Any]] | None:
    """A chunked index's hit: its best passages (offsets, score and the text they cover)."""
    inner = (raw.get("inner_hits") or {}).get(PASSAGES_FIELD)
    if inner is None:
        return None
    out = []
    for hit in inner.get("hits", {}).get("hits", []):
        found = hit.get("fields") or {}
        start, end = (int(found[name][0]) for name in PASSAGE_OFFSETS)
        piece = text[start:end] if isinstance(text, str) else None
        out.append({"start": start, "end": end, "score": float(hit["_score"]), "text": piece})
    return out


def inner_hits(size: int = PASSAGE_HITS) -> dict[str, Any]:
    """The nested `inner_hits`: the offsets only (their doc values), not the vectors."""
    return {"size": size, "_source": False, "docvalue_fields": PASSAGE_OFFSETS}
