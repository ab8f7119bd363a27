"""The chunker against its golden file (which the Java processor reads too), and its promises:
every token covered, passages that fit the model, overlap, CJK and Thai, a 100k-character
line, the settings' checks, the refusal of other chunking settings. No node needed."""

from __future__ import annotations

import json
import time

import pytest

from tests.chunking_golden import GOLDEN, SETTINGS, TEXTS, build, default_tokenizer, dumps
from xlir_plugin.chunking import (
    TERMINALS,
    Chunker,
    ChunkSettings,
    boundary_level,
    check_chunking,
    chunk_spans,
)
from xlir_plugin.errors import InputError, ModelMismatch


@pytest.fixture(scope="module")
def tokenizer_file():
    return default_tokenizer()


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def chunkers(tokenizer_file):
    return {s: Chunker(tokenizer_file, ChunkSettings(*s)) for s in SETTINGS}


def test_python_chunker_cuts_the_golden_passages(tokenizer_file, golden):
    assert golden["terminals"] == TERMINALS and golden["texts"] == TEXTS
    assert len(golden["cases"]) == len(SETTINGS) * len(TEXTS)
    cut = chunkers(tokenizer_file)
    for case in golden["cases"]:
        chunker = cut[(case["max_tokens"], case["overlap_tokens"])]
        spans = chunker.spans(golden["texts"][case["name"]])
        assert [list(s) for s in spans] == case["passages"], case["name"]


def test_golden_file_is_what_the_generator_writes(tokenizer_file):
    assert dumps(build(tokenizer_file)) == GOLDEN.read_text(encoding="utf-8")


def test_every_token_is_in_a_passage_and_passages_fit(tokenizer_file):
    """Re-tokenized alone, a passage has at most max_tokens tokens, plus one where it starts
    inside a run without spaces (CJK): SentencePiece then puts a lone `▁` before it, which the
    document had only at its start. For the model, a passage may also hold the lone `▁` markers
    SentencePiece puts on the spaces before emoji, digits or a Thai phrase: they cover no text
    and are not counted (step 1 of `chunking`), so the model sees at most max_tokens + those
    markers + the prefix ("passage: ", 3 tokens alone) + the 2 special tokens."""
    for (max_tokens, _), chunker in chunkers(tokenizer_file).items():
        for name, text in TEXTS.items():
            tokens = chunker.token_spans(text)
            spans = chunker.spans(text)
            for start, end in tokens:
                assert any(a <= start and end <= b for a, b in spans), (name, start)
            for a, b in spans:
                alone = chunker.token_spans(text[a:b])
                lone = a > 0 and not text[a - 1].isspace()
                assert len(alone) <= max_tokens + (1 if lone else 0), (name, a, b)
                model = chunker.tokenizer.encode("passage: " + text[a:b])
                markers = model.tokens.count("\u2581")
                assert len(model.ids) <= max_tokens + markers + 3 + 2, (name, a, b)


def test_short_text_is_one_passage_without_surrounding_whitespace(tokenizer_file):
    chunker = Chunker(tokenizer_file, ChunkSettings(64))
    text = TEXTS["surrounding_whitespace"]
    assert chunker.spans(text) == [(len(text) - len(text.lstrip()), len(text.rstrip()))]
    assert chunker.spans("  Hello.  ") == [(2, 8)]


def test_nothing_to_embed_gives_no_passages(tokenizer_file):
    chunker = Chunker(tokenizer_file, ChunkSettings(16))
    for text in ("", "   ", "\n\t \u3000"):
        assert chunker.spans(text) == []
    assert len(chunker.spans("<p></p>")) == 1  # markup has tokens: it is text to the model


def test_sentences_win_over_words_and_words_over_nothing(tokenizer_file):
    chunker = Chunker(tokenizer_file, ChunkSettings(8))
    text = "Hello world. This is a test! And more words follow here"
    spans = chunker.spans(text)
    assert text[slice(*spans[0])] == "Hello world. This is a"  # the sentence end is too early
    chunker = Chunker(tokenizer_file, ChunkSettings(12))
    assert text[slice(*chunker.spans(text)[0])] == "Hello world. This is a test!"


def test_overlap_shares_tokens_and_none_shares_nothing(tokenizer_file):
    text = TEXTS["english"]
    plain = Chunker(tokenizer_file, ChunkSettings(32)).spans(text)
    shared = Chunker(tokenizer_file, ChunkSettings(32, 8)).spans(text)
    assert all(a[1] <= b[0] for a, b in zip(plain, plain[1:], strict=False))
    assert all(b[0] < a[1] for a, b in zip(shared, shared[1:], strict=False))
    assert len(shared) > len(plain)


@pytest.mark.parametrize("name", ["chinese", "japanese", "thai"])
def test_text_without_spaces_splits_into_bounded_passages(tokenizer_file, name):
    chunker = Chunker(tokenizer_file, ChunkSettings(24))
    text = TEXTS[name]
    spans = chunker.spans(text)
    assert len(spans) >= 3
    assert all(len(chunker.token_spans(text[a:b])) <= 25 for a, b in spans)
    if name != "thai":  # Chinese and Japanese cut after their full stops where one fits
        assert sum(text[b - 1] == "。" for _, b in spans[:-1]) >= 1


def test_100k_character_line_is_fast_and_covered(tokenizer_file):
    chunker = Chunker(tokenizer_file, ChunkSettings(256, 32))
    text = "x7Q" * 33_334
    started = time.perf_counter()
    spans = chunker.spans(text)
    assert time.perf_counter() - started < 5.0
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[0] < b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_levels_on_a_hand_made_token_list():
    text = "ab. cd ef\ngh"
    spans = [(0, 3), (4, 6), (7, 9), (10, 12)]
    assert [boundary_level(text, spans, t) for t in range(3)] == [2, 1, 2]
    assert chunk_spans(text, spans, ChunkSettings(2)) == [(0, 3), (4, 6), (7, 12)]
    assert chunk_spans(text, spans, ChunkSettings(3)) == [(0, 3), (4, 12)]  # sentence first
    assert chunk_spans(text, spans, ChunkSettings(2, 0)) == chunk_spans(
        text, spans, ChunkSettings(2)
    )
    assert chunk_spans(text, [], ChunkSettings(3)) == []


@pytest.mark.parametrize(
    ("max_tokens", "overlap"),
    [(0, 0), (-3, 0), (32, 16), (32, -1), (1, 1), (3.5, 0), (True, 0)],
)
def test_bad_settings_are_refused(max_tokens, overlap):
    with pytest.raises(InputError, match="chunking"):
        ChunkSettings(max_tokens, overlap)


def test_settings_must_fit_the_model(tokenizer_file):
    Chunker(tokenizer_file, ChunkSettings(507), max_length=512, prefix="passage: ")
    with pytest.raises(InputError, match="at most 507"):
        Chunker(tokenizer_file, ChunkSettings(508), max_length=512, prefix="passage: ")


def test_other_chunking_settings_are_a_mismatch():
    stamp = ChunkSettings(128, 16).stamp()
    assert stamp == {"max_tokens": 128, "overlap_tokens": 16, "version": 1}
    check_chunking("i", stamp, ChunkSettings(128, 16))
    check_chunking("i", None, None)
    for have, want in ((stamp, ChunkSettings(128)), (stamp, None), (None, ChunkSettings(64))):
        with pytest.raises(ModelMismatch, match="new index"):
            check_chunking("i", have, want)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--chunk-overlap", "8"], "--chunk-overlap needs --chunk-tokens"),
        (["--chunk-tokens", "32", "--chunk-overlap", "16"], "overlap_tokens"),
        (["--chunk-tokens", "0"], "max_tokens must be >= 1"),
    ],
)
def test_cli_refuses_bad_chunk_flags_before_connecting(flags, says, tmp_path, capsys):
    from xlir_plugin.cli import main

    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "a", "lang": "en"}\n')
    url = ["--es-url", "http://127.0.0.1:9"]  # nothing listens: the flags fail first
    assert main(["index", "--index", "i", "--input", str(docs), *url, *flags]) == 2
    assert says in capsys.readouterr().err
