"""Long documents cut into passages of at most N model tokens, each with its character offsets.

The algorithm is small and written out here (not a library) because the in-engine processor
(`xlir_embed`, Java) must cut the same passages from the same text: both follow this spec, and
`tests/data/chunking_golden.json` holds the expected spans both sides are tested against.

1. Tokenize the whole text once with the model's `tokenizer.json` (no special tokens, no
   prefix). Each token's span is its character offsets (Python `str` indices: code points)
   with the leading whitespace trimmed (`is_space`): SentencePiece's `▁` folds the space
   before a word into the word's token, and a lone `▁` token is the space itself. Tokens
   whose trimmed span is empty are dropped; `n` tokens remain (none: nothing to embed).
2. A cut after token t (0 <= t <= n-2) has a level, from the gap between the tokens
   `text[end_t:start_t+1]` and the last character `text[end_t - 1]`: 2 (sentence) when that
   character is in `TERMINALS` or the gap holds a newline; 1 (word) when the gap holds any
   whitespace; else 0.
3. From token i: j = min(i + max_tokens, n). If j == n the passage ends at n. Else the cut
   is after the largest t in [lo - 1, j - 2] (lo = i + max(1, max_tokens // 2)) of level 2,
   else of level 1, else at j (no boundary in the second half of the window). The passage is
   [start_i, end_(cut-1)]. Then i = max(cut - overlap_tokens, i + 1), until the end.

Short documents (n <= max_tokens) are one passage: the text's span without the surrounding
whitespace.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, ModelMismatch

CHUNKING_VERSION = 1
#: passage length when none is given (`xlir index --chunk-tokens`): chosen on training data
#: (squad-dev-parallel documents: 128 beat 256 on Mono, Cross and Multi mAP) before XQuAD-R
#: was looked at, where 128 also leads (results/long-documents.md)
DEFAULT_MAX_TOKENS = 128
#: characters that end a sentence (the Java side copies this string)
TERMINALS = ".!?;。！？；؟।۔…"

Span = tuple[int, int]


def is_space(ch: str) -> bool:
    """Python's `str.isspace` (Unicode White_Space plus the separators U+001C..U+001F); the
    golden file lists these code points for the Java side."""
    return ch.isspace()


@dataclass(frozen=True)
class ChunkSettings:
    """Passages of at most `max_tokens` tokens; `overlap_tokens` shared by consecutive ones."""

    max_tokens: int
    overlap_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("max_tokens", "overlap_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"chunking: {name} must be an integer, got {value!r}")
        if self.max_tokens < 1:
            raise InputError(f"chunking: max_tokens must be >= 1, got {self.max_tokens}")
        if self.overlap_tokens and not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise InputError(
                f"chunking: overlap_tokens must be in [0, max_tokens // 2) = "
                f"[0, {self.max_tokens // 2}), got {self.overlap_tokens}"
            )
        if self.overlap_tokens < 0:
            raise InputError(f"chunking: overlap_tokens must be >= 0, got {self.overlap_tokens}")

    def stamp(self) -> dict[str, int]:
        """What the index's `_meta.xlir.chunking` records."""
        return {
            "max_tokens": self.max_tokens,
            "overlap_tokens": self.overlap_tokens,
            "version": CHUNKING_VERSION,
        }

    def check_fits(self, max_length: int, prefix_tokens: int) -> None:
        """A passage plus the prefix and the two special tokens must fit the model."""
        limit = max_length - 2 - prefix_tokens
        if self.max_tokens > limit:
            raise InputError(
                f"chunking: max_tokens {self.max_tokens} does not fit the model: at most "
                f"{limit} (max_length {max_length} - 2 special tokens - {prefix_tokens} "
                "prefix tokens)"
            )


def check_chunking(index: str, stamp: dict[str, Any] | None, settings: ChunkSettings | None):
    """Refuse a write whose chunking differs from the index's, as a model mismatch is."""
    want = settings.stamp() if settings else None
    if (stamp or None) == want:
        return

    def say(s: dict | None) -> str:
        if not s:
            return "one vector per document (not chunked)"
        return (
            f"passages of {s.get('max_tokens')} tokens, overlap {s.get('overlap_tokens')} "
            f"(chunking v{s.get('version')})"
        )

    raise ModelMismatch(
        f"index {index!r} holds {say(stamp)}; this write asks for {say(want)}. Use the "
        "index's chunking settings, or index into a new index."
    )


def token_spans(text: str, offsets: list[Span]) -> list[Span]:
    """Token spans with leading whitespace trimmed; empty spans dropped (step 1)."""
    spans = []
    for start, end in offsets:
        while start < end and is_space(text[start]):
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def boundary_level(text: str, spans: list[Span], t: int) -> int:
    """2: a sentence ends after token t; 1: a word does; 0: neither (step 2)."""
    end = spans[t][1]
    gap = text[end : spans[t + 1][0]]
    if (end > 0 and text[end - 1] in TERMINALS) or "\n" in gap:
        return 2
    return 1 if any(is_space(ch) for ch in gap) else 0


def chunk_spans(text: str, spans: list[Span], settings: ChunkSettings) -> list[Span]:
    """The passages' [start, end) character spans for the token `spans` of `text` (step 3)."""
    n, size = len(spans), settings.max_tokens
    out: list[Span] = []
    i = 0
    while i < n:
        j = min(i + size, n)
        cut = j
        if j < n:
            lo = i + max(1, size // 2)
            best = {2: -1, 1: -1}
            for t in range(j - 2, lo - 2, -1):
                level = boundary_level(text, spans, t)
                if level and best[level] < 0:
                    best[level] = t
                    if level == 2:
                        break
            t = best[2] if best[2] >= 0 else best[1]
            if t >= 0:
                cut = t + 1
        out.append((spans[i][0], spans[cut - 1][1]))
        if cut == n:
            break
        i = max(cut - settings.overlap_tokens, i + 1)
    return out


class Chunker:
    """Cuts texts into passages with a model's tokenizer (`tokenizer.json` of an exported dir).

    The prefix the encoder adds to passages (e.g. "passage: ") and the two special tokens
    must fit next to `max_tokens` in the model's `max_length`: checked here.
    """

    def __init__(
        self,
        tokenizer_file: str | Path,
        settings: ChunkSettings,
        max_length: int | None = None,
        prefix: str = "",
    ) -> None:
        self.settings = settings
        self.tokenizer = _tokenizer(str(tokenizer_file))
        if max_length is not None:
            # as the model sees it: "passage: " is 3 tokens, its trailing `▁` included
            prefix_tokens = len(self.tokenizer.encode(prefix, add_special_tokens=False).ids)
            settings.check_fits(max_length, prefix_tokens)

    @classmethod
    def for_encoder(cls, encoder: Any, settings: ChunkSettings) -> Chunker:
        """The chunker of an `OnnxEncoder`'s model (its tokenizer, max length, passage prefix)."""
        return cls(
            Path(encoder.model_dir) / "tokenizer.json",
            settings,
            encoder.max_length,
            encoder.manifest.encoder.passage_prefix or "",
        )

    def _offsets(self, text: str) -> list[Span]:
        return self.tokenizer.encode(text, add_special_tokens=False).offsets

    def token_spans(self, text: str) -> list[Span]:
        return token_spans(text, self._offsets(text))

    def spans(self, text: str) -> list[Span]:
        """The passages of `text` as [start, end) character spans (none: nothing to embed)."""
        return chunk_spans(text, self.token_spans(text), self.settings)


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str) -> Any:
    """`tokenizers` for offsets (the encoder's lean tokenizer gives ids only); read once."""
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
