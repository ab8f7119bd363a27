"""A tiny BERT encoder and tokenizer built from a config: tests never download a model."""

from __future__ import annotations

from pathlib import Path

from xlir_plugin.manifest import EncoderSettings

WORDS = [
    "the",
    "a",
    "of",
    "in",
    "is",
    "was",
    "what",
    "who",
    "when",
    "where",
    "which",
    "how",
    "why",
    "capital",
    "city",
    "river",
    "country",
    "der",
    "die",
    "das",
    "ist",
    "wer",
    "wo",
    "wann",
    "welche",
    "stadt",
    "fluss",
    "land",
    "el",
    "la",
    "de",
    "es",
    "que",
    "donde",
    "cuando",
    "ciudad",
    "rio",
    "pais",
    "le",
    "est",
    "qui",
    "ou",
    "quand",
    "ville",
    "pays",
    "berlin",
    "paris",
    "madrid",
    "rome",
    "water",
    "fire",
    "music",
    "science",
    "history",
    "football",
    "king",
    "queen",
    "war",
    "peace",
    "year",
    "born",
    "died",
    "university",
]


def build_tokenizer():
    """A word-level fast tokenizer with `<s> $A </s>` framing, like the XLM-R family."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=128,
    )


def build_tiny_encoder(path: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised BertModel + tokenizer + XLIR settings into `path`."""
    import torch
    from transformers import BertConfig, BertModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    EncoderSettings(max_length=128).save(path)
    return path
