"""A lean SentencePiece-Unigram tokenizer: the ids of `tokenizers`, a sixth of its memory.

For a Unigram vocabulary `tokenizers` builds a byte trie with a hash map in every node: for
the 250k-token vocabulary of multilingual-e5 that is ~250 MB resident, more than the int8
model. Here the vocabulary is one dict (~40 MB) and the same Viterbi search (highest total
score, the shortest piece first on ties, consecutive unknown characters fused into one
`<unk>`) runs in Python. Added tokens, normalisation and pre-tokenisation still run in
`tokenizers`, built from the same tokenizer.json without its model.

`load_lean` returns None for a tokenizer.json whose output it does not reproduce exactly:
not Unigram, byte fallback, added tokens matched after normalisation, a pre-tokenizer other
than Metaspace (`prepend_scheme` always or never), or a post-processor other than specials
around the text. The encoder then uses `tokenizers` itself.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UNK_PENALTY = 10.0  # sentencepiece / tokenizers: an unknown character scores min_score - 10
SEGMENT_ID = 2**32 - 1  # the id of "not an added token" in the added-token splitter
WORD_CACHE_SIZE = 50_000  # words whose pieces are kept (cleared when full)
VOCAB_KEY = re.compile(rb'"vocab"\s*:\s*\[')
VOCAB_ENTRY = re.compile(rb'\s*\[\s*"((?:[^"\\]|\\.)*)"\s*,\s*([-+0-9.eE]+)\s*\]\s*,?')
VOCAB_END = re.compile(rb"\s*\]")
NUMBER = re.compile(rb"(-?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([-+]?[0-9]+))?")
U64_MAX = 2**64 - 1


@dataclass
class LeanEncoding:
    """What the encoder reads from a `tokenizers.Encoding`: ids and overflowing windows."""

    ids: list[int]
    overflowing: list[LeanEncoding] = field(default_factory=list)


def load_lean(path: str | Path) -> LeanUnigram | None:
    """The lean tokenizer for `path` (a tokenizer.json), or None when it is not supported."""
    read = _read(Path(path).read_bytes())
    if read is None:
        return None
    spec, vocab = read
    model = spec.pop("model") or {}
    template = _template(spec.get("post_processor"))
    if not _supported(spec, model) or template is None or not vocab.ids:
        return None
    return LeanUnigram(spec, model, vocab, template)


@dataclass
class Vocab:
    """Token -> id, and the scores by id (float64, as tokenizers keeps them)."""

    ids: dict[str, int] = field(default_factory=dict)
    scores: array = field(default_factory=lambda: array("d"))


def _read(data: bytes) -> tuple[dict[str, Any], Vocab] | None:
    """(the file without its vocabulary, the vocabulary), or None for another layout.

    Entries are decoded one at a time: a parse tree of 250k small lists would leave its
    garbage interleaved with the kept strings (~40 MB more resident).
    """
    key = VOCAB_KEY.search(data)
    if key is None:
        return None
    vocab, pos = Vocab(), key.end()
    while entry := VOCAB_ENTRY.match(data, pos):
        raw, score = entry.groups()
        token = json.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode()
        vocab.ids[token] = len(vocab.scores)  # a repeated token keeps its last id, as in Rust
        vocab.scores.append(serde_f64(score))
        pos = entry.end()
    end = VOCAB_END.match(data, pos)
    if end is None:
        return None
    return json.loads(data[: key.end()] + data[end.start() :]), vocab


def serde_f64(text: bytes) -> float:
    """The float serde_json reads from `text`, as tokenizers builds it (no `float_roundtrip`):
    the digits that fit a u64, as a float, times or divided by a power of ten. It is 1 ulp off
    a correctly rounded parse for a quarter of the XLM-R scores, so `float(text)` would not do.
    """
    sign, whole, frac, exp = NUMBER.fullmatch(text).groups()
    frac = frac or b""
    if len(whole) + len(frac) <= 19:  # always fits a u64
        significand, exponent = int(whole + frac), -len(frac)
    else:
        significand, exponent = _u64_digits(whole, frac)
    exponent += int(exp or 0)
    value = float(significand)
    while exponent < -308 and value:
        value, exponent = value / 1e308, exponent + 308
    scale = float(f"1e{abs(exponent)}")
    value = value * scale if exponent >= 0 else value / scale
    return -value if sign else value


def _u64_digits(whole: bytes, frac: bytes) -> tuple[int, int]:
    """serde_json's (significand, exponent) for more digits than a u64 holds: integer digits
    past the overflow scale it, fraction digits are kept until one would overflow."""
    significand, exponent = 0, 0
    for i, digit in enumerate(whole):
        if significand * 10 + digit - 48 > U64_MAX:
            exponent = len(whole) - i
            break
        significand = significand * 10 + digit - 48
    for digit in frac:
        if significand * 10 + digit - 48 > U64_MAX:
            break
        significand, exponent = significand * 10 + digit - 48, exponent - 1
    return significand, exponent


def _supported(spec: dict[str, Any], model: dict[str, Any]) -> bool:
    pre = spec.get("pre_tokenizer") or {}
    return (
        model.get("type") == "Unigram"
        and not model.get("byte_fallback")
        and model.get("unk_id") is not None
        and not spec.get("truncation")
        and not spec.get("padding")
        and all(not t.get("normalized") for t in spec.get("added_tokens") or [])
        and pre.get("type") == "Metaspace"
        and pre.get("prepend_scheme", "always") in ("always", "never")
    )


def _template(post: dict[str, Any] | None) -> tuple[list[int], list[int]] | None:
    """(ids before, ids after) the text for a single sequence, or None when unsupported."""
    if post is None:
        return [], []
    kind = post.get("type")
    if kind in ("RobertaProcessing", "BertProcessing"):
        return [post["cls"][1]], [post["sep"][1]]
    if kind != "TemplateProcessing":
        return None
    before: list[int] = []
    after: list[int] = []
    seen_text = False
    for item in post["single"]:
        if "Sequence" in item:
            if seen_text or item["Sequence"]["id"] != "A":
                return None
            seen_text = True
        else:
            name = item["SpecialToken"]["id"]
            (after if seen_text else before).extend(post["special_tokens"][name]["ids"])
    return (before, after) if seen_text else None


class LeanUnigram:
    """`encode` / `encode_batch` / `token_to_id` with the results of `tokenizers.Tokenizer`."""

    def __init__(
        self,
        spec: dict[str, Any],
        model: dict[str, Any],
        vocab: Vocab,
        template: tuple[list[int], list[int]],
    ) -> None:
        from tokenizers import Tokenizer

        self._ids, self._scores = vocab.ids, vocab.scores
        self._unk_id = int(model["unk_id"])
        self._unk_score = min(self._scores) - UNK_PENALTY
        self._longest = max(map(len, self._ids))
        # an added token already in the vocabulary has its vocabulary id, as in tokenizers
        self._added = {
            t["content"]: self._ids.get(t["content"], int(t["id"]))
            for t in spec.get("added_tokens") or []
        }
        self._before, self._after = template
        self._max_length: int | None = None
        self._stride = 0
        self._words: dict[str, list[int]] = {}
        # the same pipeline without a model: added-token splitting, normaliser, pre-tokenizer
        bare = {k: v for k, v in spec.items() if k not in ("post_processor", "decoder")}
        bare["model"] = {"type": "WordLevel", "vocab": {"": SEGMENT_ID}, "unk_token": ""}
        pipeline = Tokenizer.from_str(json.dumps(bare))
        self._normalizer = pipeline.normalizer
        self._pre_tokenizer = pipeline.pre_tokenizer
        pipeline.normalizer = None
        pipeline.pre_tokenizer = None
        self._splitter = pipeline  # what is left finds the added tokens in the raw text

    # -- the tokenizers.Tokenizer methods the encoder uses --------------------------------

    padding = None

    def no_padding(self) -> None:
        """Padding is the encoder's job (per batch); nothing to turn off."""

    def enable_truncation(self, max_length: int, stride: int = 0) -> None:
        self._max_length, self._stride = max_length, stride

    def token_to_id(self, token: str) -> int | None:
        return self._added.get(token, self._ids.get(token))

    def encode_batch(self, texts: list[str]) -> list[LeanEncoding]:
        return [self.encode(text) for text in texts]

    def encode(self, text: str) -> LeanEncoding:
        ids: list[int] = []
        for added, segment in self._segments(text):
            if added is not None:
                ids.append(added)
                continue
            normalized = self._normalizer.normalize_str(segment) if self._normalizer else segment
            if normalized:  # tokenizers drops a segment normalised to nothing
                for word, _ in self._pre_tokenizer.pre_tokenize_str(normalized):
                    ids.extend(self._word_ids(word))
        return self._truncate(ids)

    # -- internals ------------------------------------------------------------------------

    def _segments(self, text: str) -> list[tuple[int | None, str]]:
        """(added token id, None) and (None, text between them), in order."""
        if not any(content in text for content in self._added):
            return [(None, text)]
        found = self._splitter.encode(text, add_special_tokens=False)
        return [
            (None, text[start:end])
            if i == SEGMENT_ID
            else (self._added[self._splitter.id_to_token(i)], "")
            for i, (start, end) in zip(found.ids, found.offsets, strict=True)
        ]

    def _truncate(self, ids: list[int]) -> LeanEncoding:
        """Windows of the text as `Encoding.truncate` cuts them, specials around each."""
        room = (self._max_length or 0) - len(self._before) - len(self._after)
        if self._max_length is None or len(ids) <= room:
            return LeanEncoding(self._before + ids + self._after)
        step = room - self._stride
        if step < 1:
            raise ValueError(f"stride {self._stride} must be below {room} (max_length - specials)")
        windows = []
        for start in range(0, len(ids), step):
            windows.append(LeanEncoding(self._before + ids[start : start + room] + self._after))
            if start + room >= len(ids):
                break
        return LeanEncoding(windows[0].ids, windows[1:])

    def _word_ids(self, word: str) -> list[int]:
        known = self._words.get(word)
        if known is None:
            if len(self._words) >= WORD_CACHE_SIZE:
                self._words.clear()
            known = self._words[word] = [
                self._ids.get(word[b:e], self._unk_id) for b, e in self._viterbi(word)
            ]
        return known

    def _viterbi(self, word: str) -> list[tuple[int, int]]:
        """The (start, end) pieces of the best-scoring segmentation of `word`."""
        n = len(word)
        best = [0.0] * (n + 1)
        start = [-1] * (n + 1)
        unknown = [False] * (n + 1)
        ids, scores, unk_id = self._ids, self._scores, self._unk_id
        for i in range(n):
            base = best[i]
            single = False
            for j in range(i + 1, min(n, i + self._longest) + 1):
                tid = ids.get(word[i:j])
                if tid is None:
                    continue
                single = single or j == i + 1
                score = scores[tid] + base
                if start[j] < 0 or score > best[j]:
                    best[j], start[j], unknown[j] = score, i, tid == unk_id
            if not single and (start[i + 1] < 0 or self._unk_score + base > best[i + 1]):
                best[i + 1], start[i + 1], unknown[i + 1] = self._unk_score + base, i, True
        pieces: list[tuple[int, int, bool]] = []
        end = n
        while end > 0:
            b = start[end]
            if unknown[end] and pieces and pieces[-1][2]:  # fuse consecutive unknowns
                pieces[-1] = (b, pieces[-1][1], True)
            else:
                pieces.append((b, end, unknown[end]))
            end = b
        return [(b, e) for b, e, _ in reversed(pieces)]
